"""User-facing errors: the CLI prints these as one line and exits with code 2, without a traceback."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path


class RoboilError(Exception):
    """A mistake the user can fix (bad config, missing file, unknown plugin name).

    The message names the problem and the fix, in one line.
    """


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type when it has none): for one-line reports."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


_interrupted = False


def catch_interrupts(raise_them: bool) -> None:
    """Make SIGINT (Ctrl-C) set the flag ``interrupted()`` reads and, with ``raise_them``, raise KeyboardInterrupt
    as Python's own handler does, except inside an import: there it is raised once the import is over.

    A KeyboardInterrupt raised inside an import can abort the process (torch's C++ initialization calls back into
    Python, and pybind11 turns the exception into std::terminate) or become an ImportError that reads as a
    broken plugin (MuJoCo's extension). Not raising at all suits the CLI's own imports, where a
    KeyboardInterrupt could only end in a traceback.
    """
    def handler(signum, frame):
        global _interrupted
        _interrupted = True
        if raise_them:
            _raise_outside_imports(signum, frame)

    signal.signal(signal.SIGINT, handler)


_RETRY_SECONDS = 0.02  # how often a deferred interrupt checks whether the import is over


def _raise_outside_imports(signum, frame) -> None:
    """KeyboardInterrupt now, or, while ``frame`` is inside an import, from a timer that checks again."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            signal.signal(signal.SIGALRM, _raise_outside_imports)
            signal.setitimer(signal.ITIMER_REAL, _RETRY_SECONDS)
            return
        frame = frame.f_back
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigint_kept_from_children():
    """Processes started inside never see a Ctrl-C. It reaches the whole process group, and a child (an env
    worker, or a library's helper started at import, such as pyGLFW's version probe) would print its own
    KeyboardInterrupt traceback after roboil's one line. SIGINT is blocked in this thread, a mask children keep
    for life; this process still gets the signal. Another thread may take it, and Python then runs the handler
    in the main thread at once: in the main thread the handler waits for the block's end, so a start is never
    cut between spawning a child and handing it its work (the child printed an EOFError traceback). So does the
    timer that raises a Ctrl-C which came during an import (see :func:`catch_interrupts`): the block's own
    lazy imports made its interrupt land inside a start."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    held = (signal.SIGINT, signal.SIGALRM) if threading.current_thread() is threading.main_thread() else ()
    caught: dict[int, object] = {}
    handlers = {signum: signal.signal(signum, lambda signum, frame: caught.setdefault(signum, frame))
                for signum in held}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        for signum, frame in caught.items():
            if callable(handlers[signum]):
                handlers[signum](signum, frame)
            elif signum == signal.SIGINT and handlers[signum] == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


def leave_stops_to_the_main_process() -> None:
    """In a worker process: a Ctrl-C, or a SIGTERM from `timeout` or a scheduler, reaches the whole process group;
    it is the main process's to handle (a training saves its step first, then ends its workers). A worker that
    took it would die, and the main process would stop on its death instead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def interrupted() -> bool:
    return _interrupted


@contextlib.contextmanager
def interrupts_deferred(notice: str | None = None):
    """Inside, a first Ctrl-C only sets the flag :func:`interrupted` reads (and prints ``notice``: a step may take a
    while), for a loop to stop where stopping keeps its work (a training loop saves its step first); a second one
    raises KeyboardInterrupt at once, for a loop stuck before that point. The handler from before is back on the
    way out, and an interrupt that ended the block as KeyboardInterrupt is no longer flagged. Outside the main
    thread (no signal handler can be set there) and where Ctrl-C is ignored, nothing changes."""
    global _interrupted
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous == signal.SIG_IGN:
        yield
        return

    def handler(signum, frame):
        global _interrupted
        if _interrupted:
            _raise_outside_imports(signum, frame)
        _interrupted = True
        if notice:
            from tqdm import tqdm  # a progress bar may be on screen: the line goes above it

            try:
                tqdm.write(notice, file=sys.stderr)
            except (RuntimeError, OSError):  # the signal came while stderr was being written: the notice waits
                pass

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    except KeyboardInterrupt:
        _interrupted = False  # the exception carries it on
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NO_PERMISSION = {errno.EACCES, errno.EPERM}
_READ_ONLY_MESSAGE = "'{out}' is on a read-only file system; pass an output path you can write to"
_NO_PERMISSION_MESSAGE = "no permission to write in '{out}'; pass an output path you can write to"


def write_failure(exc: BaseException, out: str | Path) -> str | None:
    """One line for an exception that is a failed write under ``out`` (disk full, read-only file system, no
    permission), whichever library raised it; None for any other exception.

    zarr and the stdlib raise OSError; safetensors, ffmpeg (through our video writer and env workers) only put
    the system's message in their text; torch.save says ``iostream error`` and OpenCV nothing, so an I/O error
    on a device with under 1 MiB free counts as disk full whatever its text says.
    """
    codes, denied, io_error, texts = set(), False, False, []
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno is not None:
            codes.add(exc.errno)
            # a permission error elsewhere (reading a config, say) is not about --out
            denied |= exc.errno in _NO_PERMISSION and _is_under(exc.filename, out)
        # torch.save's "iostream error"; our video writer's "could not write" (OpenCV, ffmpeg)
        io_error |= isinstance(exc, OSError) or any(word in str(exc) for word in ("iostream", "could not write"))
        texts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    text = " ".join(texts)
    full = io_error and shutil.disk_usage(_existing(out)).free < 1 << 20
    if full or codes & _NO_SPACE or os.strerror(errno.ENOSPC) in text:
        return (f"no space left on the device holding '{out}'; free some space or pass another output path "
                "(everything saved before this write is intact)")
    if errno.EROFS in codes or os.strerror(errno.EROFS) in text:
        return _READ_ONLY_MESSAGE.format(out=out)
    if denied:
        return _NO_PERMISSION_MESSAGE.format(out=out)
    return None


def try_lock(path: Path, shared: bool = False) -> int | None:
    """An exclusive (or ``shared``), non-blocking ``flock`` on ``path`` (made if missing): the descriptor holding
    it until closed or the process dies, or None while another process holds it otherwise; OSError if it cannot
    be opened or locked."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            return None
        raise
    return fd


@contextlib.contextmanager
def claim_directory(out_dir: Path, lock_name: str, doing: str, shared: bool = False):
    """Hold a lock on ``out_dir/lock_name`` while this process is ``doing`` its work there ("training it"):
    another one is refused in one line naming the holder (pid and host). ``shared`` holders (an evaluation's
    shards, written side by side) refuse, and are refused by, only an exclusive one. On a filesystem without
    locks (a cluster's NFS without lockd, say) a warning, and no lock."""
    import socket

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / lock_name
    try:
        fd, unlockable = try_lock(path, shared), None
    except OSError as e:
        fd, unlockable = None, e.strerror
    if unlockable is not None:  # the work goes on outside the except: no part of handling that error
        print(f"roboil: warning: '{out_dir}' cannot be locked ({unlockable}): nothing stops another process "
              f"{doing} meanwhile", file=sys.stderr)
        yield
        return
    if fd is None:
        holder = (path.read_text().strip().splitlines() or ["?"])[0]  # shards writing side by side may leave two
        raise RoboilError(f"'{out_dir}' is in use by another process {doing} ({holder}); wait for it to end or stop "
                          "it, or pass another --out")
    # An exclusive holder that ends in any way it can act on clears its line: one left behind, "since" when it
    # started, was killed (SIGKILL, say from the kernel out of memory) or lost its machine. Shared holders, side
    # by side, cannot tell which of them ends last: their lines say no "since", and stay.
    if not shared and (note := _left_by_a_killed_holder(os.pread(fd, 200, 0).decode(errors="replace"), doing)):
        print(f"roboil: note: {note}", file=sys.stderr)
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    try:
        with contextlib.suppress(OSError):  # who holds it, for the message; a full disk leaves it unsaid
            os.ftruncate(fd, 0)
            since = "" if shared else time.strftime(" since %Y-%m-%d %H:%M UTC", time.gmtime())
            os.pwrite(fd, f"{holder}{since}\n".encode(), 0)
        yield
    finally:
        if not shared:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        os.close(fd)


def _left_by_a_killed_holder(line: str, doing: str) -> str | None:
    """What to say of a lock line an exclusive holder left (see :func:`claim_directory`), if anything."""
    import re
    import socket

    found = re.match(r"pid (\d+) on (\S+) since ", line.strip())
    if found is None:
        return None
    pid, host = int(found[1]), found[2]
    if host != socket.gethostname():
        return (f"the last process {doing} ({line.strip()}) did not end as it should: killed, or still running "
                f"there if this filesystem does not share locks between machines (then stop one of them)")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:  # gone without clearing its line
        return (f"the last process {doing} ({line.strip()}) was killed before it could stop (by the kernel out of "
                "memory, a signal or a crash); what it saved is kept")
    except PermissionError:  # alive, another user's
        pass
    return None  # alive: writing the directory this one was copied from, say; nothing is known of its end


def check_writable(out: str | Path, store_ok: bool = False) -> None:
    """Refuse an output path that cannot be written before any work is done (under a file, read-only, no
    permission, an episode store or inside one; ``store_ok``: a store itself is the output, to append to)."""
    from .store import enclosing_store, is_store  # the store module imports this one

    where = _existing(out)
    if where != Path(out).absolute() and not where.is_dir():
        raise RoboilError(f"'{where}' is a file, so '{out}' cannot be made inside it; pass another output path")
    if (store := enclosing_store(out)) is not None:
        raise RoboilError(f"'{out}' is inside the episode store '{store}', which it would break; pass an output "
                          "path outside it")
    if not store_ok and is_store(out):
        raise RoboilError(f"'{out}' is an episode store, which writing there would break; pass an output path "
                          "outside it")
    if os.statvfs(where).f_flag & os.ST_RDONLY:
        raise RoboilError(_READ_ONLY_MESSAGE.format(out=out))
    if not os.access(where, os.W_OK):
        raise RoboilError(_NO_PERMISSION_MESSAGE.format(out=out))


def _existing(path: str | Path) -> Path:
    """``path`` or its nearest ancestor that exists (where a directory to be made would go)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return path


def _is_under(filename, out: str | Path) -> bool:
    if filename is None:
        return False
    path, out = Path(os.fsdecode(filename)).absolute(), Path(out).absolute()
    return path == out or out in path.parents or path in out.parents  # or a parent --out would be made in
