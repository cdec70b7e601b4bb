"""Embeddings: every window's encoder vector projected to 2-D, coloured by its anomaly score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
from sklearn.decomposition import PCA

from anomaly.dashboard import common, figures

MAX_DRAWN = 20_000  # beyond this, normal windows are thinned for drawing; flagged ones are all kept

st.title("Embeddings")
st.caption(
    "The encoder compresses every window into a fixed-length vector; PCA projects those vectors to 2-D. "
    "Windows that look alike sit together; hover a point to see its time span."
)
ld = common.load_selected(need_frame=True)
with common.user_errors():
    vectors = common.embed(ld.model_key, ld.data_key, ld.detector, ld.frame)


@st.cache_data(show_spinner="Projecting…", max_entries=4)
def project(model_key: str, data_key: str, _vectors: pd.DataFrame) -> tuple[np.ndarray, tuple[float, float]]:
    z = _vectors.filter(regex=r"^z\d+$").to_numpy()
    pca = PCA(n_components=2, random_state=0).fit(z)
    ratio = pca.explained_variance_ratio_
    return pca.transform(z), (float(ratio[0]), float(ratio[1]) if len(ratio) > 1 else 0.0)


xy, explained = project(ld.model_key, ld.data_key, vectors)
ends = pd.DatetimeIndex(vectors["end"])
score = ld.flagged["score"].reindex(ends).to_numpy()
points = pd.DataFrame({"start": vectors["start"], "end": vectors["end"], "pc1": xy[:, 0], "pc2": xy[:, 1], "score": score})
flagged = ld.flagged["is_anomaly"].reindex(ends, fill_value=False).to_numpy(dtype=bool)  # the rule in force
if len(points) > MAX_DRAWN:
    keep = flagged.copy()
    keep[np.linspace(0, len(points) - 1, MAX_DRAWN).round().astype(int)] = True
    drawn = points[keep]
else:
    drawn = points
colour = st.radio(
    "Colour scale",
    ["score", "log score"],
    horizontal=True,
    key="emb_colour",
    help="A log scale separates the many low scores; anomalies stay the brightest.",
)
m1, m2, m3 = st.columns(3)
m1.metric("Windows", f"{len(points):,}")
m2.metric("Drawn", f"{len(drawn):,}")
m3.metric("Windows ending on a flagged point", f"{int(flagged.sum()):,}")
st.plotly_chart(
    figures.embedding_figure(drawn.sort_values("score"), explained, log=colour == "log score"),
    key="emb_chart",
    config={"displaylogo": False},
)
