"""Shared fixtures: tiny hand-made digraphs whose answers are written out in the tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def in_project_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run a stage's main() inside an empty directory (stages write relative paths)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _quiet_threads() -> None:
    # Two cores here: keep torch from oversubscribing when pytest runs other work.
    os.environ.setdefault("OMP_NUM_THREADS", "2")
