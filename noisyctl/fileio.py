"""Atomic file output: write to a temporary name beside the target, then move it into place."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from noisyctl.errors import NoisyctlError


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path``, on failure it is removed.

    A reader never sees a half-written file, and an interrupted write leaves
    the previous version of ``path`` untouched.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NoisyctlError(f"cannot create folder {parent}: {exc.strerror}") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file private (0600), and some writers (safetensors) re-create it: give it
        # the mode a plain open() would, so reports and weights can be shared like any other file.
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def exclusive(lock_path: str | os.PathLike, doing: str, remove: bool = False) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (created if needed), or refuse at once:
    two processes writing the same output would otherwise leave one of them's work lost or mixed.
    ``remove`` deletes the lock file when done (for locks beside a user's file)."""
    import fcntl

    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise NoisyctlError(f"another noisyctl process is {doing} (it holds {path}); wait for it to finish") from None
    try:
        yield
    finally:
        if remove:
            path.unlink(missing_ok=True)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
