"""scripts/check-offline-docs.py: the built docs must load no script or style from the network."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check-offline-docs.py"


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_offline_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = _load_checker()

CLEAN = """<!DOCTYPE html>
<html><head>
<link rel="stylesheet" href="_static/styles/theme.css" />
<link rel="preload" as="script" href="../_static/scripts/bootstrap.js" />
<script src="_static/mathjax/tex-chtml.js"></script>
<script>window.x = "https://example.org/in/inline/code/is/not/loaded";</script>
</head><body>
<a href="https://pytorch.org">a plain link loads nothing</a>
<style scoped><link href="https://cdn.example.org/inside-style-is-css-text.css"></style>
</body></html>
"""

OFFENDING = """<!DOCTYPE html>
<html><head>
<link rel="stylesheet" href="_static/styles/theme.css" />
<script defer="defer" src="https://cdn.jsdelivr.net/npm/mathjax@4/tex-mml-chtml.js"></script>
<link href="//cdn.example.org/bootstrap.min.css" rel="stylesheet" />
<link rel="preload" href="HTTP://cdn.example.org/font.woff2" as="font" />
</head><body><a href="https://pytorch.org">fine</a></body></html>
"""


def _site(tmp_path: Path, pages: dict[str, str]) -> Path:
    for name, text in pages.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_clean_pages_pass(tmp_path, capsys):
    root = _site(tmp_path, {"index.html": CLEAN, "sub/page.html": CLEAN})
    assert checker.main([str(root)]) == 0
    assert "2 pages" in capsys.readouterr().out


def test_each_remote_script_and_link_is_named_with_its_file(tmp_path, capsys):
    root = _site(tmp_path, {"index.html": CLEAN, "auto_examples/q.html": OFFENDING})
    assert checker.main([str(root)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    page = root / "auto_examples" / "q.html"
    assert lines == [
        f"{page}:4: <script> https://cdn.jsdelivr.net/npm/mathjax@4/tex-mml-chtml.js",
        f"{page}:5: <link> //cdn.example.org/bootstrap.min.css",
        f"{page}:6: <link> HTTP://cdn.example.org/font.woff2",
    ]
    assert "3 script/link URL(s)" in captured.err


def test_a_folder_without_pages_fails(tmp_path, capsys):
    assert checker.main([str(tmp_path)]) == 2
    assert "nothing checked" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "remote"), [
    ("https://cdn.example.org/a.js", True),
    ("http://cdn.example.org/a.js", True),
    ("//cdn.example.org/a.js", True),
    (" https://cdn.example.org/a.js", True),
    ("_static/a.js", False),
    ("../_static/mathjax/tex-chtml.js", False),
    ("/_static/a.js", False),
    ("data:text/css,", False),
])
def test_is_remote(url, remote):
    assert checker.is_remote(url) is remote


def test_command_line_exit_status(tmp_path):
    root = _site(tmp_path, {"page.html": OFFENDING})
    done = subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 1
    assert f"{root / 'page.html'}:4: <script> https://cdn.jsdelivr.net" in done.stdout
