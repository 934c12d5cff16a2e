"""Atomic publication of a result set (the files of one run in one output directory).

The files are written into a staging directory beside ``out`` (``.OUT.<pid>.<random>.staging``); the
entries of ``out`` that are not part of a result set (a config, a sweep's ``cache``) are carried into
the staging directory (hard links for files, renames for the rest, listed first in a ``.carried``
file beside it), and the staging directory is then exchanged with ``out`` in one ``renameat2``
(``RENAME_EXCHANGE``) call: a reader sees the old complete set or the new complete set, never a mix.
Where the exchange is not available, ``out`` is renamed aside (``.OUT.<pid>.<random>.old``) and the
staging directory renamed in its place. Publication runs under an exclusive lock on the parent
directory with Ctrl-C and SIGTERM held back (they are delivered once the set is in place).

An error before the new set is in place (in carrying, the exchange, the fallback's renames) undoes what
was done: ``out`` is put back from ``.old``, the carried entries are moved back into ``out`` and their list
removed, and the error is raised. What cannot be undone is kept where it is (never removed: the list stays
beside the staging directory) and named in a note on the error; the next run puts it back.

What a killed run leaves (a staging or ``.old`` directory of a process that no longer exists) is
cleaned by the next publication into the same ``out``, and by :func:`clean_stale`, which the CLI calls
before it runs: carried entries are moved back, a missing ``out`` is restored from ``.old``.

One file alone is replaced by :func:`atomic_write` (temporary file beside it, fsync, ``os.replace``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path

CARRIED = ".carried"  # suffix of the list of entries moved from ``out`` into a staging directory
_RENAME_EXCHANGE = 2


def stage_dir(out: Path) -> Path:
    """A fresh staging directory beside ``out`` (named after ``out`` and this process)."""
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".staging", dir=out.parent))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid < 2**22  # another user's process (or not a pid at all)
    return True


def stale_entries(out: Path) -> list[Path]:
    """Staging / ``.old`` directories (and carried lists) of ``out`` left by processes that are gone
    (also the ``.OUT.<random>.staging`` of earlier versions), ``.old`` ones first."""
    name = re.escape(out.name)
    ours = re.compile(rf"^\.{name}\.(\d+)\.[a-z0-9_]+\.(staging|old|staging\.carried)$")
    legacy = re.compile(rf"^\.{name}\.[a-z0-9_]{{8}}\.staging$")
    found = []
    try:
        entries = os.listdir(out.parent)
    except FileNotFoundError:
        return []
    for e in entries:
        m = ours.match(e)
        if (m and not _pid_alive(int(m.group(1)))) or legacy.match(e):
            found.append(out.parent / e)
    return sorted(found, key=lambda p: (not p.name.endswith(".old"), p.name.endswith(CARRIED)))


def _listed(listing: Path) -> list[str]:
    """The names in a carried list (a list cut short by a kill while it was written: none moved yet)."""
    try:
        names = json.loads(listing.read_text(encoding="utf-8"))
    except ValueError:
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def _restore_carried(stage: Path, out: Path, names: list[str] | None = None) -> None:
    """Move the entries carried from ``out`` into ``stage`` (``names``; None: those its list names) back into
    ``out``, each one that is still in ``stage`` and missing in ``out``; the list goes once none is left.
    Where one cannot go back (``out`` gone, an entry of that name in ``out`` again, a failed rename) it stays
    in ``stage`` with the list, and OSError names them all (the caller must not remove ``stage``)."""
    listing = _carried_list(stage)
    if names is None:
        if not listing.is_file():
            return
        names = _listed(listing)
    left, first = [], None
    for n in names:
        if os.sep in n or n in (".", "..") or not os.path.lexists(stage / n):  # an entry of out, nothing else
            continue
        try:
            if os.path.lexists(out / n) or not out.is_dir():  # a rename would replace it or fail
                raise FileExistsError(errno.EEXIST, f"{out / n} exists" if out.is_dir() else f"{out} is missing")
            os.rename(stage / n, out / n)
        except OSError as exc:
            left.append(n)
            first = first or exc
    if left:
        raise OSError(first.errno, f"could not move {', '.join(left)} back from {stage} into {out} ({first}); "
                                   f"they are kept there (listed in {listing.name}) and moved back by the next "
                                   f"run into {out} (or move them by hand)")
    with contextlib.suppress(FileNotFoundError):
        listing.unlink()


def holds_carried(stage: Path) -> bool:
    """Whether ``stage`` may still hold entries of ``out`` (its carried list exists): it must not be removed."""
    return os.path.lexists(_carried_list(stage))


def _carried_list(stage: Path) -> Path:
    """Where the names of the entries carried from ``out`` into ``stage`` are listed (beside ``stage``)."""
    return Path(str(stage) + CARRIED)


def _clean(out: Path) -> list[Path]:
    """Clean what killed runs left for ``out`` (the caller holds the lock); returns what was removed. A
    staging directory whose carried entries cannot go back stays (OSError, see _restore_carried)."""
    removed = []
    for p in stale_entries(out):
        if not os.path.lexists(p):
            continue
        if p.name.endswith(".old") and not os.path.lexists(out):
            os.rename(p, out)  # died between the two renames of the fallback: the old set comes back
        elif p.name.endswith(CARRIED):
            p.unlink()
        else:
            _restore_carried(p, out)
            shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


@contextlib.contextmanager
def _locked(directory: Path):
    import fcntl

    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def clean_stale(out: str | Path) -> list[Path]:
    """Remove (or put back) what runs killed during publication left beside ``out``."""
    out = Path(os.path.abspath(Path(out).expanduser()))
    if not out.parent.is_dir() or not stale_entries(out):
        return []
    with _locked(out.parent):
        return _clean(out)


@contextlib.contextmanager
def held_signals():
    """Ctrl-C and SIGTERM held back (their Python handlers, main thread only) and delivered when the block
    ends (any thread may receive a process signal, so masking it in this thread would not do).

    A held signal goes to the handler the process had: one it ignores stays ignored (a background job of a
    non-interactive shell starts with SIGINT ignored). A handler not set from Python (``signal.signal``
    cannot put it back) is left alone, not held. A signal landing while the handlers are put back runs its
    own handler; what that raises is raised once every handler is back (no handler is left holding)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old: dict[int, object] = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(s) is not None:
                old[s] = signal.signal(s, lambda signum, frame: got.append(signum))
        yield
    finally:
        late = _restore_handlers(old)
        for s in dict.fromkeys(got):  # handed to their own handlers now, in the order they came
            handler = old[s]
            if callable(handler):
                handler(s, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), s)
        if late is not None:
            raise late


def _restore_handlers(old: dict) -> BaseException | None:
    """Put back the signal handlers ``{signum: handler}``, each one even where a signal landing between two
    of them runs its already restored handler inside ``signal.signal`` (which handles pending signals
    first) and that raises; returns the first such exception (None: none)."""
    late = None
    for s, handler in old.items():
        for _ in range(100):  # one more try per signal that lands meanwhile
            try:
                signal.signal(s, handler)
                break
            except BaseException as exc:  # noqa: BLE001 - the caller raises it once all are back
                late = late or exc
    return late


def _exchange(a: Path, b: Path) -> bool:
    """Swap the directories ``a`` and ``b`` atomically (False: not supported here)."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if fn(-100, os.fsencode(a), -100, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, f"cannot publish {b}: {os.strerror(err)}")


def _to_carry(stage: Path, out: Path, owned: set[str]) -> list[str]:
    """Hard-link the plain files of ``out`` that are not ``owned`` result files into ``stage`` (``out`` keeps
    them); returns the other entries to carry (directories, links, files that cannot be linked)."""
    moved = []
    for e in sorted(os.listdir(out)):
        if e in owned or os.path.lexists(stage / e):
            continue
        src = out / e
        if src.is_file() and not src.is_symlink():
            try:
                os.link(src, stage / e)
                continue
            except OSError:
                pass
        moved.append(e)
    return moved


def _carry(stage: Path, out: Path, names: list[str]) -> None:
    """Move the entries ``names`` of ``out`` into ``stage``, listed first beside it (``.carried``)."""
    if names:
        _carried_list(stage).write_text(json.dumps(names), encoding="utf-8")
    for e in names:
        os.rename(out / e, stage / e)


def _swap(stage: Path, out: Path, step) -> bool:
    """Put ``stage`` in the place of ``out`` (whose content ends in ``stage``); True: by the exchange. An error
    before the new set is in ``out`` is raised with ``out`` as it was (or, where putting it back failed, a
    note saying where the old set is: the next run puts it back)."""
    if _exchange(stage, out):
        return True
    old = Path(str(stage)[: -len(".staging")] + ".old")
    os.rename(out, old)
    try:
        step("moved aside")
        os.rename(stage, out)
    except BaseException as exc:
        try:
            os.rename(old, out)
        except OSError as err:
            exc.add_note(f"the previous content of {out} could not be put back ({err}): it is in {old}, put "
                         f"back by the next run into {out} (or rename it by hand)")
        raise
    try:
        os.rename(old, stage)  # removed by the caller (outside the lock)
    except OSError:
        shutil.rmtree(old, ignore_errors=True)  # published: what is left goes with the next run
    return False


def _put_back(stage: Path, out: Path, names: list[str], exc: BaseException) -> None:
    """After a failed publication: the entries carried into ``stage`` go back into ``out``; where that fails,
    a note on ``exc`` says where they are (kept in ``stage`` with their list)."""
    try:
        _restore_carried(stage, out, names)
    except OSError as err:
        exc.add_note(str(err))


def publish(stage: Path, out: Path, owned: set[str], step=None) -> None:
    """Make the complete set in ``stage`` the content of ``out`` (see the module doc); entries of ``out``
    named in ``owned`` (the files a result set may hold) are replaced or dropped, all others kept.
    ``step(name)`` is called before each step (a test hook for faults).

    On an error before the new set is in ``out`` the entries carried into ``stage`` are moved back and
    ``out`` is as it was; where moving them back fails they stay in ``stage`` with their list (the caller
    keeps it: :func:`holds_carried`) and a note on the error names them. An error after it has
    ``published`` set to ``out``."""
    step = step or (lambda name: None)
    try:
        cwd = Path.cwd()
    except FileNotFoundError:
        cwd = None
    with _locked(out.parent):
        _clean(out)
        step("lock")
        if not os.path.lexists(out):
            os.rename(stage, out)
            return
        names = _to_carry(stage, out, owned)
        try:
            _carry(stage, out, names)
            step("carried")
            exchanged = _swap(stage, out, step)
        except BaseException as exc:
            _put_back(stage, out, names, exc)
            raise
        try:
            if exchanged:
                step("exchanged")
        except BaseException as exc:
            exc.published = out
            raise
        finally:
            with contextlib.suppress(OSError):
                _carried_list(stage).unlink()  # the carried entries are in out now
    if cwd is not None and (cwd == out or out in cwd.parents):
        with contextlib.suppress(OSError):
            os.chdir(cwd)  # the working directory was in the old out: follow the path into the new one


# ---- atomic files (one file replaced whole; result sets are published from them) ----
def fsync_dir(directory: Path) -> None:
    """fsync a directory (its entries durable); errors ignored (not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write(path: str | Path, writer) -> Path:
    """Call ``writer(tmp_path)`` on a temporary file next to ``path``, fsync it, then ``os.replace``.

    On any exception the temporary file is removed and an existing ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the file the usual permissions
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
    return path
