"""Whole outputs: inside stage_outputs() a stage's files appear together or not at all."""

from __future__ import annotations

import pytest

from pipeline.storage import atomic_directory, stage_outputs, write_json


def _files(root):
    return {str(path.relative_to(root)): path.read_text()
            for path in sorted(root.rglob("*")) if path.is_file()}


def _stage(root, version: int, fail_after_first: bool = False) -> None:
    with stage_outputs():
        with atomic_directory(root / "outputs" / "train") as tmp:
            (tmp / "model.txt").write_text(f"model {version}")
            write_json(tmp / "summary.json", {"version": version})  # inside the directory: moves with it
        if fail_after_first:
            raise RuntimeError("injected")
        write_json(root / "metrics" / "train.json", {"version": version})


def test_outputs_appear_together(tmp_path):
    _stage(tmp_path, 1)
    assert _files(tmp_path) == {"metrics/train.json": '{\n  "version": 1\n}\n',
                                "outputs/train/model.txt": "model 1",
                                "outputs/train/summary.json": '{\n  "version": 1\n}\n'}
    _stage(tmp_path, 2)
    assert _files(tmp_path)["outputs/train/model.txt"] == "model 2"
    assert '"version": 2' in _files(tmp_path)["metrics/train.json"]


def test_a_failure_after_the_first_output_keeps_the_previous_ones_and_no_temporaries(tmp_path):
    _stage(tmp_path, 1)
    before = _files(tmp_path)
    with pytest.raises(RuntimeError, match="injected"):
        _stage(tmp_path, 2, fail_after_first=True)
    assert _files(tmp_path) == before
    assert not [path for path in tmp_path.rglob(".*")]  # every temporary is gone


def test_without_a_stage_each_file_still_lands_at_once(tmp_path):
    write_json(tmp_path / "a.json", {"a": 1})
    assert (tmp_path / "a.json").is_file()


def test_outputs_get_the_modes_the_umask_gives(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_directory(tmp_path / "out") as folder:
            (folder / "f.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644  # mkstemp alone gives 0600
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755  # mkdtemp alone gives 0700


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(dead.stdout)  # a process that has exited
    leftover = tmp_path / f".recs.parquet.{pid}-abc123.tmp"
    leftover.write_bytes(b"half a parquet file")
    live = tmp_path / f".recs.parquet.{1}-live00.tmp"  # pid 1 is running: another writer's, kept
    live.write_bytes(b"in progress")
    write_json(tmp_path / "recs.parquet", {"a": 1})
    assert not leftover.exists() and live.exists()

