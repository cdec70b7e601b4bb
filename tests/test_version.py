"""One version source (anomaly.__version__), read by pyproject.toml and printed by the CLI; licence and changelog."""

from __future__ import annotations

import ast
import re
import tomllib

import anomaly
from tests.conftest import ROOT, run_cli

# Semantic Versioning 2.0.0's own pattern (pre-release and build metadata included).
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def _static_version() -> str:
    """``__version__`` as setuptools' ``attr:`` reads it: the literal assigned in anomaly/__init__.py, no import."""
    tree = ast.parse((ROOT / "anomaly" / "__init__.py").read_text())
    values = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    assert len(values) == 1, "anomaly/__init__.py must assign __version__ exactly once, to a string literal"
    return values[0]


def test_pyproject_reads_the_version_from_the_package():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in meta["project"]
    assert meta["project"]["dynamic"] == ["version"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "anomaly.__version__"}
    assert not re.search(r"(?m)^\s*version\s*=\s*[\"']", (ROOT / "pyproject.toml").read_text())


def test_the_version_is_semver_and_the_same_read_or_imported():
    version = _static_version()
    assert SEMVER.match(version), version
    assert anomaly.__version__ == version
    assert not SEMVER.match("0.1") and not SEMVER.match("v0.1.0") and not SEMVER.match("01.0.0")


def test_cli_prints_the_version():
    out = run_cli("--version", timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"anomaly {anomaly.__version__}"


def test_licence_and_changelog():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n\nCopyright (c) 2026 lstm-anomaly contributors\n")
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license-files"] == ["LICENSE"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"(?m)^## \[([^\]]+)\]", changelog)
    assert headings[:2] == ["Unreleased", anomaly.__version__]
