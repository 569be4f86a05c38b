"""What the static HTML pages roboil writes share (``roboil eval``'s report.html, ``roboil store view``'s page):
their base style and links to the files written beside them, so a page opens from disk with a double-click."""

from __future__ import annotations

import html
import os
from pathlib import Path

# Green border: a successful episode's video, red: a failed one's.
REPORT_CSS = """body{font-family:sans-serif;margin:2em} figure{display:inline-block;margin:4px;text-align:center}
figure.ok video{border:4px solid #2a2} figure.fail video{border:4px solid #c22} video{width:240px}
td,th{padding:2px 10px;text-align:right}"""


def relative_url(path: str | Path, page_dir: Path) -> str:
    """``path`` as an attribute-safe URL relative to the page's directory (works over file:// and HTTP alike)."""
    return html.escape(Path(os.path.relpath(path, page_dir)).as_posix())
