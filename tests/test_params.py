"""Hyperparameters declared once (anomaly.params): the constructor, the checks, the CLI and the form follow."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest
from sklearn.base import clone

from anomaly import params
from anomaly.detector import LSTMAutoencoderDetector
from anomaly.errors import ConfigError
from anomaly.params import param


@dataclass(repr=False, eq=False)
class WithKnob(LSTMAutoencoderDetector):
    """The detector with one more hyperparameter, declared the one way the package allows."""

    knob: int = param(3, "int", "a new knob", low=1, flag="--knob", group="model")


def test_the_constructor_is_the_declaration():
    specs, defaults = params.specs(LSTMAutoencoderDetector), params.defaults(LSTMAutoencoderDetector)
    assert LSTMAutoencoderDetector.param_names() == list(specs) == list(defaults)
    assert LSTMAutoencoderDetector().get_params() == defaults
    assert all(spec.valid(defaults[name]) for name, spec in specs.items())  # every default follows its own rule


def invalid_values(spec: params.Spec) -> list:
    """Values ``spec`` must refuse."""
    bad = {
        "bool": ["yes", 1],
        "choice": ["nope"],
        "units": [(), (0,), "32"],
        "stride": [0, "fast", 1.5],
        "names": ["a,b", (1,)],
        "zone": ["Mars/Base", "", "../etc/passwd", "Europe", "x" * 300, "localtime", 1],
    }.get(spec.kind, [])
    if spec.kind in ("int", "float"):
        bad += [True, "3", float("nan")]
        if spec.low is not None:
            bad.append(spec.low if spec.open_low else spec.low - 1)
        if spec.high is not None:
            bad.append(spec.high if spec.open_high else spec.high + 1)
    if spec.kind == "int":
        bad.append(2.5)
    return bad + ([] if spec.none else [None])


@pytest.mark.parametrize("name", list(params.specs(LSTMAutoencoderDetector)))
def test_each_rule_refuses_in_one_line_naming_the_parameter(name):
    spec = params.specs(LSTMAutoencoderDetector)[name]
    for value in invalid_values(spec):
        with pytest.raises(ConfigError, match=rf"^{name} must be ") as caught:
            LSTMAutoencoderDetector(**{name: value}).check_params()
        assert "\n" not in str(caught.value)


def test_every_flag_is_in_train_help():
    from anomaly.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]  # argparse keeps subparsers there
    text = train.format_help()
    for spec in params.specs(LSTMAutoencoderDetector).values():
        if spec.flag:
            assert spec.flag in text


def test_a_new_hyperparameter_declared_once_reaches_the_constructor_checks_cli_and_form(capsys):
    assert WithKnob().knob == 3 and clone(WithKnob(knob=4)).knob == 4 and "knob=4" in repr(WithKnob(knob=4))
    with pytest.raises(ConfigError, match=r"^knob must be an integer >= 1, not 0$"):
        WithKnob(knob=0).check_params()
    parser = argparse.ArgumentParser()
    params.add_options(parser.add_argument_group("model"), WithKnob, "model")
    assert "a new knob (default: 3)" in " ".join(parser.format_help().split())
    given = params.given(parser.parse_args(["--knob", "5", "--window", "16"]), WithKnob)
    assert given["knob"] == 5 and given["window"] == 16
    assert WithKnob(**given).knob == 5
    with pytest.raises(SystemExit):  # refused as the option, by the hyperparameter's own rule
        parser.parse_args(["--knob", "0"])
    assert "argument --knob: expected an integer >= 1, not '0'" in capsys.readouterr().err
    assert "knob" in params.form_fields(WithKnob, {"window"}) and "window" not in params.form_fields(WithKnob, {"window"})


def test_the_dashboard_form_shows_a_new_hyperparameter():
    from streamlit.testing.v1 import AppTest

    def page():
        from dataclasses import dataclass

        import streamlit as st

        from anomaly.dashboard import common
        from anomaly.detector import LSTMAutoencoderDetector
        from anomaly.params import param

        @dataclass(repr=False, eq=False)
        class WithKnob(LSTMAutoencoderDetector):
            knob: int = param(3, "int", "a new knob", low=1, flag="--knob", group="model")

        st.session_state["got"] = common.more_settings(WithKnob, set(LSTMAutoencoderDetector.param_names()), "m")

    at = AppTest.from_function(page, default_timeout=60).run()  # 3 s by default: too short on a busy CI machine
    assert not at.exception
    assert [n.label for n in at.number_input] == ["Knob"]
    assert at.session_state["got"] == {"knob": 3}
    at.number_input[0].set_value(7).run()
    assert at.session_state["got"] == {"knob": 7}
