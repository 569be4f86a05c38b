"""Progress bars for the commands: tqdm's redrawn bar on a terminal; in a log (stderr redirected to a file or a
pipe: nohup, Slurm, CI) a plain line every half minute and one at the end, since a file cannot be redrawn and
keeps every carriage-return frame tqdm writes (several a second, for hours)."""

from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL_S = 30.0
LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class _LogLines:
    """A stream for tqdm that writes each of its redraws as one whole line of a log."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        if line := text.replace("\r", "").strip():
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(total: int | None, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True) -> tqdm:
    """A bar on stderr (none when not ``enabled``)."""
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled)
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled, file=_LogLines(sys.stderr),
                mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S, bar_format=LOG_FORMAT)
