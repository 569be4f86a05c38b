"""Progress bars for the commands: tqdm's redrawn bar on a terminal (or a notebook); in a log (stderr redirected to
a file, a pipe or a socket: nohup, Slurm, CI) a plain line every half minute and one at the end, since a file
cannot be redrawn and keeps every carriage-return frame tqdm writes (several a second, for hours)."""

from __future__ import annotations

import io
import os
import re
import stat
import sys

from tqdm import tqdm

LOG_INTERVAL_S = 30.0
LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
LOG_FORMAT_OPEN = "{desc}: {n_fmt} {unit} [{elapsed}, {rate_fmt}{postfix}]"  # no total: a person ends the session
CURSOR_MOVES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # written around nested bars


class _LogLines:
    """A stream for tqdm that writes each of its redraws as one whole line of a log."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        if line := CURSOR_MOVES.sub("", text).replace("\r", "").strip():
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _is_log(stream) -> bool:
    """The process's own stderr on a regular file, a pipe or a socket; not a terminal, nor a stream that replaced
    it (a notebook's, whose descriptor may be a pipe yet shows redraws)."""
    if stream is not sys.__stderr__:
        return False
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def progress_bar(total: int | None, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True) -> tqdm:
    """A bar on stderr (none when not ``enabled``)."""
    if not _is_log(sys.stderr):
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled)
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled, file=_LogLines(sys.stderr),
                mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S,
                bar_format=LOG_FORMAT if total is not None else LOG_FORMAT_OPEN)
