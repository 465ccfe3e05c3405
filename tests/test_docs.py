"""The documentation site builds without a warning (``mkdocs build --strict``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("mkdocs_jupyter")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    pages = ["index.html", "concepts/index.html", "cli/index.html", "api/pursuit/index.html"]
    assert all((tmp_path / page).is_file() for page in pages)
    # the API reference is generated from the docstrings
    assert "ml_fista" in (tmp_path / "api" / "pursuit" / "index.html").read_text()
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("0*.ipynb"))
    for name in notebooks:
        assert (tmp_path / "notebooks" / Path(name).stem / "index.html").is_file()
