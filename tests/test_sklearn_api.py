"""scikit-learn conventions of the detector: clone, repr, HTML repr, Pipeline, decision_function, predict."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline

from anomaly.detector import LSTMAutoencoderDetector
from anomaly.errors import ConfigError
from tests.conftest import make_series

# Smaller than conftest.TINY: one epoch of a 4-unit model is all these tests need.
SMALL = dict(window=8, encoder_units=(4,), decoder_units=(4,), latent_dim=2, epochs=1, batch_size=32, verbose=0)
NORMAL_ROWS = 160


@pytest.fixture(scope="module")
def data():
    """A short series: normal first, then a gap longer than a window (no score) and a spike (flagged)."""
    frame = make_series(n=260, seed=3)
    frame.iloc[190:200] = np.nan
    frame.iloc[230:236, 0] += 25.0
    return frame


@pytest.fixture(scope="module")
def pipeline(data):
    """A one-step Pipeline around a small detector, fitted on the normal part."""
    return Pipeline([("det", LSTMAutoencoderDetector(**SMALL))]).fit(data.iloc[:NORMAL_ROWS])


def test_is_a_scikit_learn_estimator():
    assert isinstance(LSTMAutoencoderDetector(), BaseEstimator)


def test_get_params_are_the_constructor_values_in_order_deep_or_not():
    units = (4, 2)
    det = LSTMAutoencoderDetector(window=12, encoder_units=units, local_rule="dynamic")
    names = [p for p in inspect.signature(LSTMAutoencoderDetector.__init__).parameters if p != "self"]
    for params in (det.get_params(), det.get_params(deep=True), det.get_params(deep=False)):
        assert list(params) == names
        assert params["window"] == 12 and params["local_rule"] == "dynamic"
        assert params["encoder_units"] is units


def test_set_params_with_an_unknown_name_is_a_config_error():
    det = LSTMAutoencoderDetector()
    with pytest.raises(ConfigError, match="unknown parameter 'windw'"):
        det.set_params(windw=3)
    assert det.set_params(window=5) is det and det.window == 5


def test_clone_is_an_unfitted_copy_with_equal_params(pipeline):
    fitted = pipeline.named_steps["det"]
    assert hasattr(fitted, "model_")
    copy = clone(fitted)
    assert type(copy) is LSTMAutoencoderDetector and copy is not fitted
    assert copy.get_params() == fitted.get_params() == LSTMAutoencoderDetector(**SMALL).get_params()
    assert not [name for name in vars(copy) if name.endswith("_")]


def test_repr_shows_only_changed_params():
    assert repr(LSTMAutoencoderDetector()) == "LSTMAutoencoderDetector()"
    assert repr(LSTMAutoencoderDetector(window=64)) == "LSTMAutoencoderDetector(window=64)"
    assert repr(LSTMAutoencoderDetector(epochs=3, window=64)) == "LSTMAutoencoderDetector(epochs=3, window=64)"
    defaults = {name: p.default for name, p in inspect.signature(LSTMAutoencoderDetector.__init__).parameters.items()}
    passed = LSTMAutoencoderDetector(window=defaults["window"], epochs=defaults["epochs"])
    assert repr(passed) == "LSTMAutoencoderDetector()"  # a default passed explicitly is not a change


def test_html_repr_names_the_class_fitted_or_not(pipeline):
    for det in (LSTMAutoencoderDetector(window=64), pipeline.named_steps["det"]):
        html = det._repr_html_()
        assert "<div" in html and "LSTMAutoencoderDetector" in html


def test_pipeline_fits_and_scores(pipeline, data):
    scores = pipeline.decision_function(data)
    assert isinstance(scores, np.ndarray) and scores.shape == (len(data),)
    np.testing.assert_array_equal(scores, pipeline.named_steps["det"].decision_function(data))


def test_pipeline_set_params_reach_the_detector():
    pipe = Pipeline([("det", LSTMAutoencoderDetector())])
    pipe.set_params(det__window=16)
    assert pipe.named_steps["det"].window == 16
    with pytest.raises(ConfigError, match="unknown parameter 'windw'"):
        pipe.set_params(det__windw=16)


def test_decision_function_and_predict_are_the_score_frames_columns(pipeline, data):
    det = pipeline.named_steps["det"]
    frame = det.score(data)
    scores, labels = det.decision_function(data), det.predict(data)
    assert scores.dtype == np.float64 and scores.shape == (len(data),)
    np.testing.assert_array_equal(scores, frame["score"].to_numpy())
    assert np.isnan(scores[190:200]).all() and np.isfinite(scores[:190]).all()  # the gap has no score
    assert labels.dtype.kind == "i" and set(np.unique(labels)) == {0, 1}
    np.testing.assert_array_equal(labels, frame["is_anomaly"].to_numpy().astype(int))
    assert labels[230:236].any() and not labels[190:200].any()


def test_a_fitted_detector_whose_shape_is_changed_asks_to_be_refitted(data):
    """set_params(window=...) on a fitted detector: one clear error, not Keras' shape mismatch; set back, it scores."""
    det = LSTMAutoencoderDetector(**SMALL).fit(data.iloc[:NORMAL_ROWS])
    expected = det.score(data)
    det.set_params(window=16)
    with pytest.raises(ConfigError, match=r"^window is 16 but the model was fitted with 8: fit again after changing it$"):
        det.score(data)
    det.set_params(window=8, encoder_units=[4])  # the same units as a list (from JSON, say) is no change
    np.testing.assert_array_equal(det.score(data)["score"].to_numpy(), expected["score"].to_numpy())
    det.set_params(local_k=9.0, epochs=3)  # flagging and training settings do not change the network
    det.score(data)
    det.set_params(horizon=5)  # a reconstruction model predicts no steps: no change
    det.score(data)
    det.set_params(horizon=1, context_columns=("b",))  # input-only columns change the network's input
    with pytest.raises(ConfigError, match=r"context_columns is \('b',\) but the model was fitted with \(\)"):
        det.score(data)
    det.set_params(context_columns=(), latent_dim=3)
    with pytest.raises(ConfigError, match="latent_dim is 3"):
        det.detect(data)
    assert det.fit(data.iloc[:NORMAL_ROWS]).score(data)["score"].notna().any()  # refitted at the new shape, it scores


def test_numpy_scalar_hyperparameters_fit_save_and_load(data, tmp_path):
    """A grid from np.arange gives numpy scalars: they fit, save to JSON and load back as numbers."""
    params = dict(
        SMALL,
        window=np.int64(8),
        latent_dim=np.int32(2),
        encoder_units=(np.int64(4),),
        epochs=np.int64(1),
        seed=np.int64(3),
        learning_rate=np.float32(0.01),
        local_k=np.float32(5.0),
        reverse=np.bool_(True),
    )
    det = LSTMAutoencoderDetector(**params).fit(data.iloc[:NORMAL_ROWS])
    det.save(tmp_path / "m")
    loaded = LSTMAutoencoderDetector.load(tmp_path / "m")
    assert loaded.get_params()["window"] == 8 and loaded.get_params()["local_k"] == 5.0 and loaded.reverse is True
    np.testing.assert_array_equal(loaded.score(data)["score"], det.score(data)["score"])


def test_deepcopy_of_a_fitted_detector_scores_alike(pipeline, data):
    import copy

    det = pipeline.named_steps["det"]
    det.score(data)  # builds the compiled predictor the copy must leave behind
    twin = copy.deepcopy(det)
    np.testing.assert_array_equal(twin.score(data)["score"], det.score(data)["score"])
    twin.set_params(local_k=2.0)
    assert det.local_k != 2.0


def test_the_decoder_mirrors_the_encoder_unless_given(data):
    """`anomaly train --units 8,4` built a 4,8 decoder while the Python API and `anomaly bench`
    built the default 32: the mirror is now the detector's own default, stored as None."""
    small = {k: v for k, v in SMALL.items() if k != "decoder_units"}
    mirrored = LSTMAutoencoderDetector(**{**small, "encoder_units": (6, 4)})
    assert mirrored.get_params()["decoder_units"] is None and mirrored.decoder_layers() == (4, 6)
    mirrored.fit(data.iloc[:NORMAL_ROWS])
    widths = [mirrored.model_.get_layer(f"decoder_{i}").output.shape[-1] for i in range(2)]
    assert widths == [4, 6]
    assert LSTMAutoencoderDetector(encoder_units=(6, 4), decoder_units=(3,)).decoder_layers() == (3,)
