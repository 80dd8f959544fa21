"""Atomic outputs: every file a stage writes appears whole or not at all, and inside
:func:`stage_outputs` every output of the stage appears together or not at all.

A stage writes to a temporary sibling and renames it into place (``os.replace`` is atomic on
one filesystem), so an interrupted or failed run never leaves a half-written output behind.
Within ``with stage_outputs():`` the renames wait until the block ends without an error; then
they run one after the other (renames only: the window is microseconds). A failure anywhere in
the block deletes every temporary and leaves the previous outputs as they were.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd


class _Staging:
    """The temporaries of one :func:`stage_outputs` block and where each goes on success."""

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path]] = []  # (temporary, final), in completion order
        self.open_directories: list[Path] = []  # temporary directories being filled

    def inside_open_directory(self, path: Path) -> bool:
        return any(directory in path.parents for directory in self.open_directories)


T = TypeVar("T")
_STAGING: ContextVar[_Staging | None] = ContextVar("stage_outputs", default=None)


@contextmanager
def stage_outputs() -> Iterator[None]:
    """Every atomic output written in the block appears only if the whole block succeeds."""
    staging = _Staging()
    token = _STAGING.set(staging)
    try:
        yield
    except BaseException:
        for tmp, _ in staging.pending:
            _remove(tmp)
        raise
    finally:
        _STAGING.reset(token)
    for tmp, path in staging.pending:
        _move_into_place(tmp, path)


def whole_outputs(stage: Callable[..., T]) -> Callable[..., T]:
    """Decorate a stage's ``main``: its outputs appear together or not at all."""
    @functools.wraps(stage)
    def run(*args: Any, **kwargs: Any) -> T:
        with stage_outputs():
            return stage(*args, **kwargs)

    return run


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _move_into_place(tmp: Path, path: Path) -> None:
    if tmp.is_dir() and path.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, trash / path.name)
        os.replace(tmp, path)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _finish(tmp: Path, path: Path) -> None:
    """Move ``tmp`` into place now, or when the enclosing :func:`stage_outputs` succeeds (a
    path inside one of its temporary directories moves with that directory)."""
    staging = _STAGING.get()
    if staging is None or staging.inside_open_directory(path):
        _move_into_place(tmp, path)
    else:
        staging.pending.append((tmp, path))


def _temporary_prefix(path: Path) -> str:
    """``.<name>.<pid>-``: the temporaries of ``path`` carry the writer's process id, so a later
    run can tell a killed writer's leftovers from a live writer's work."""
    return f".{path.name}.{os.getpid()}-"


def _remove_leftovers(path: Path) -> None:
    """Delete temporaries of ``path`` left by writers that are no longer running (a killed
    ``blade score``, a power cut): without this they would stay beside the output for ever."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*-*.tmp"):
        pid = leftover.name[len(path.name) + 2:].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            _remove(leftover)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _with_umask_modes(tmp: Path) -> None:
    """mkstemp / mkdtemp create 0600 / 0700; outputs get what the user's umask gives any new
    file (0644 / 0755 under the usual 022), so others sharing the project can read them."""
    mask = _umask()
    if tmp.is_dir():
        for root, _folders, files in os.walk(tmp):
            os.chmod(root, 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(root, name), 0o666 & ~mask)
    elif tmp.exists():
        os.chmod(tmp, 0o666 & ~mask)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _with_umask_modes(tmp)
    _finish(tmp, path)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``path`` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent))
    staging = _STAGING.get()
    if staging is not None:
        staging.open_directories.append(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if staging is not None:
            staging.open_directories.remove(tmp)
    _with_umask_modes(tmp)
    _finish(tmp, path)


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def save_figure(figure, path: str | Path) -> None:
    """Write a matplotlib figure as PNG atomically, then free it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (stages run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
