"""Atomic file output: write to a temporary name beside the target, then move it into place."""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from noisyctl.errors import NoisyctlError


class DiskFull(NoisyctlError):
    """A write that ran out of space; the target is as it was."""


# A temporary file is named ".NAME.PID.XXXXXXXX.tmp" beside the target (the writer's process id, so
# that what a killed writer left can be told from what a live one is writing): NAME must leave room.
NAME_MAX = 255 - len("..4194304.XXXXXXXX.tmp")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs. On Windows there is no harmless probe in the standard library
    (``os.kill(pid, 0)`` there terminates the process), so every writer counts as alive and what a
    killed one left stays."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_debris(target: str | os.PathLike) -> list[Path]:
    """Remove what writers of ``target`` that were killed mid-write left beside it: temporary files
    whose writer's process is gone, and a lock file no process holds. Returns what was removed."""
    import glob

    from filelock import Timeout

    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[^.]+\.tmp")
    removed = []
    try:
        for candidate in target.parent.glob(glob.escape(f".{target.name}.") + "*.tmp"):
            match = pattern.fullmatch(candidate.name)
            if match and not _alive(int(match.group(1))):
                candidate.unlink(missing_ok=True)
                removed.append(candidate)
        lock = target.with_name(f".{target.name}.lock")
        if lock.is_file():
            try:
                with _held(lock):
                    _unlink_locked(lock)
            except Timeout:
                return removed  # a live writer holds it
            if not lock.exists():
                removed.append(lock)
    except OSError:
        pass  # a read-only folder: the debris stays, and nothing else is harmed
    return removed


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)  # the same inode: symlinks and hard links included
    except OSError:
        return False


def check_output(path: str | os.PathLike, inputs: tuple = (), what: str = "output") -> Path:
    """The file an output ``path`` names (a symlink's target: it is written through, not replaced),
    or one line saying why noisyctl will not write there, before any work is done: a folder, a
    device, pipe or socket (an atomic write would replace it with a plain file), a path under a
    file, a folder it cannot write into, a name too long, or one of the command's ``inputs``
    (the same file by any path or hard link: writing it would destroy what is being read)."""
    given = Path(path)
    target = Path(os.path.realpath(given))
    try:
        status = os.stat(target)
    except FileNotFoundError:
        status = None
    except NotADirectoryError:
        raise NoisyctlError(f"cannot write {what} {given}: a folder on its path is a file") from None
    except OSError as exc:
        raise NoisyctlError(f"cannot write {what} {given}: {exc.strerror}") from None
    if status is not None:
        if stat.S_ISDIR(status.st_mode):
            raise NoisyctlError(f"{what} {given} is a folder; give the name of a file to write")
        if not stat.S_ISREG(status.st_mode):
            raise NoisyctlError(f"{what} {given} is not a regular file (a device, pipe or socket); noisyctl "
                                f"writes a new file and moves it into place, which would replace it")
        for source in inputs:
            if source is not None and same_file(target, source):
                raise NoisyctlError(f"{what} {given} is this command's input {source}: writing it would destroy "
                                    f"what is being read; give another file (nothing was written)")
    if len(target.name.encode()) > NAME_MAX:
        raise NoisyctlError(f"cannot write {what} {given}: its name is longer than {NAME_MAX} bytes")
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise NoisyctlError(f"cannot write {what} {given}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NoisyctlError(f"cannot write {what} {given}: no permission to write into {folder}")
    return target


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path``, on failure it is removed.

    A reader never sees a half-written file, and an interrupted write leaves
    the previous version of ``path`` untouched.
    """
    target = check_output(path)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_debris(target)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise NoisyctlError(f"cannot write {path}: {exc.strerror} ({exc.filename or parent})") from None
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
    except (OSError, RuntimeError) as exc:  # HDF5 reports a failed write as either
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc) \
                or "errno = 28" in str(exc):
            raise DiskFull(f"no space left on the device to write {path}; "
                           f"{'it is unchanged' if target.exists() else 'nothing was written'} "
                           f"(free some space and run the command again)") from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder beside ``path`` to fill; on success it becomes ``path`` (which must not
    exist, or be an empty folder), on failure it is removed: a folder of files appears whole or not
    at all."""
    import shutil

    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise NoisyctlError(f"{path} exists and is not an empty folder; give a new one")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise NoisyctlError(f"cannot write {path}: {exc.strerror} ({exc.filename or target.parent})") from None
    try:
        yield building
        if target.is_dir():
            target.rmdir()
        building.rename(target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _held(path: Path):
    """An exclusive lock on ``path``, taken at once or refused with ``filelock.Timeout``: an advisory
    ``flock`` on POSIX, ``msvcrt.locking`` on Windows (filelock picks), so a killed holder's lock
    goes with its process. Not per thread: a Recorder may be closed by another thread than the one
    that opened it, and its lock must go then."""
    from filelock import FileLock

    return FileLock(path, timeout=0, thread_local=False)


def _unlink_locked(path: Path) -> None:
    """Remove a lock file while holding it, so no process takes the old file meanwhile; Windows
    refuses to remove an open file, and its lock removes the file on release instead."""
    try:
        path.unlink(missing_ok=True)
    except PermissionError:
        pass


@contextmanager
def exclusive(lock_path: str | os.PathLike, doing: str, remove: bool = False) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (created if needed), or refuse at once:
    two processes writing the same output would otherwise leave one of them's work lost or mixed.
    ``remove`` deletes the lock file when done (for locks beside a user's file)."""
    from filelock import Timeout

    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = _held(path).acquire()
    except Timeout:
        raise NoisyctlError(f"another noisyctl process is {doing} (it holds {path}); wait for it to finish") from None
    with lock:
        try:
            yield
        finally:
            if remove:
                _unlink_locked(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# A spreadsheet runs a cell that begins with one of these as a formula (CSV injection): cells that
# hold data (ids, class names, texts, paths) are written with a leading apostrophe, which
# spreadsheets hide and noisyctl's own CSV reader removes.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A spreadsheet also reads a cell that looks like a number as one and saves it back changed: leading
# zeros dropped, 12 digits or more as 2.04982E+11, 12e3 as 12000. A text sample's id is 12 hex
# digits: about one in 140 is all digits, or digits around one e, and a review CSV holding one came
# back naming an id the labels file lacks. Such cells get the apostrophe too; short numbers (class
# names 0-9, 10) stay as they are, a spreadsheet keeps them.
SPREADSHEET_NUMBER = re.compile(r"\d{12,}|0\d+|\d+(\.\d*)?[eE][+-]?\d+")


def _needs_apostrophe(text: str) -> bool:
    # A text that begins with an apostrophe gets one more, so the one csv_value removes is always the
    # guard ("'0042" as an id would otherwise read back as 0042).
    return text.startswith(FORMULA_STARTS + ("'",)) or SPREADSHEET_NUMBER.fullmatch(text) is not None


def csv_cell(value: object) -> str:
    """A data string as a CSV cell no spreadsheet runs as a formula or rewrites as a number."""
    text = str(value)
    return "'" + text if _needs_apostrophe(text) else text


def csv_value(cell: str) -> str:
    """What ``csv_cell`` wrote, back as the data string."""
    return cell[1:] if cell.startswith("'") and _needs_apostrophe(cell[1:]) else cell
