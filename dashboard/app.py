"""Entry point of the dashboard: page navigation and the model/data pickers shared by every page.

Run with ``streamlit run dashboard/app.py`` (``make run`` trains the demo model first). The app
binds to 127.0.0.1 unless told otherwise (see ``.streamlit/config.toml``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository root that holds
# the `dashboard` and `anomaly` packages; add it so the pages import them from this checkout.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import common  # noqa: E402

st.set_page_config(page_title="Sensor anomalies", page_icon=":material/monitoring:", layout="wide")

# Not "pages/": a folder of that name beside the entry point makes Streamlit run its files as
# old-style pages *without* this script (so without the shared sidebar), even with st.navigation.
PAGES = Path(__file__).parent / "views"
navigation = st.navigation(
    {
        "Explore": [
            st.Page(PAGES / "series.py", title="Series", icon=":material/show_chart:", default=True),
            st.Page(PAGES / "threshold.py", title="Threshold", icon=":material/tune:"),
            st.Page(PAGES / "events.py", title="Events", icon=":material/warning:"),
            st.Page(PAGES / "embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
        ],
        "Models": [
            st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
            st.Page(PAGES / "model.py", title="Model", icon=":material/description:"),
        ],
        "Scheduled scoring": [
            st.Page(PAGES / "history.py", title="History", icon=":material/history:"),
        ],
    }
)
common.sidebar()
navigation.run()
