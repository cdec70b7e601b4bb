"""The Streamlit dashboard, installed with the package: run it with ``anomaly dashboard``.

This module imports nothing heavy: the CLI reads the app's settings here without Streamlit.
"""

from __future__ import annotations

MAX_UPLOAD_MB = 200  # the uploaders' limit, and the server's (--server.maxUploadSize, .streamlit/config.toml)


def db_label(target: str) -> str:
    """The database for display: a file path, or a URL's scheme only (never its credentials)."""
    return target if "://" not in target else target.split("://", 1)[0] + "://…"
