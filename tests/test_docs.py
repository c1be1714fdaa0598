"""The Python snippets of docs/python-api.md run as written, in order, in one namespace."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def snippets(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_python_api_snippets_run(tmp_path, monkeypatch, capsys):
    pytest.importorskip("efficientnet_lite_pytorch")
    blocks = snippets(ROOT / "docs/python-api.md")
    assert len(blocks) >= 6
    shutil.copytree(ROOT / "docs/img", tmp_path / "docs/img")  # the captioning snippet reads docs photos
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for k, block in enumerate(blocks):
        exec(compile(block, f"docs/python-api.md snippet {k + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "row-lstm" in out and "mnist-pixelrnn" in out
    assert "True True True" in out
    assert "known_rows | known_rows must lie in [0, 28] for 28x28 images, got 40" in out
    for name in ("samples.png", "completions.png", "reconstructions.png", "canvas.gif", "runs/tiny-row/config.json"):
        assert os.path.getsize(name) > 100, name
    assert namespace["summary"]["global_step"] == 8
    assert namespace["completions"].shape == (2, 4, 1, 28, 28)
