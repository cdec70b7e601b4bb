"""Entry point of the dashboard: page navigation and the model/data pickers shared by every page.

Run with ``anomaly dashboard`` (``make run`` trains the demo model first), or ``streamlit run`` on
this file. The app binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from anomaly.dashboard import common

# Not "pages/": a folder of that name beside the entry point makes Streamlit run its files as
# old-style pages *without* this script (so without the shared sidebar), even with st.navigation.
PAGES = Path(__file__).parent / "views"


def main() -> None:
    """Render one run of the app (Streamlit runs the whole script again on every interaction)."""
    st.set_page_config(page_title="Sensor anomalies", page_icon=":material/monitoring:", layout="wide")
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
    common.keep_widget_values()  # before any page runs: the pages' kept values survive this run
    common.sidebar()
    navigation.run()


if __name__ == "__main__":  # `streamlit run` executes this file as __main__
    main()
