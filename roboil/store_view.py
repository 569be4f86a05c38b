"""``roboil store view``: a static page for looking at an episode store, opened from disk with a double-click (no
server, nothing fetched from elsewhere: inline CSS, JS and SVG; the videos are files beside it).

It shows the store's summary (``EpisodeStore.info()``), its arrays, a table of every episode with a filter by
success, and for the first ``episodes`` episodes (collapsible sections) each camera as an H.264 video playing in
place and each low-dimensional array (the action, proprioception) as a small SVG chart, a line per dimension.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import numpy as np

from .errors import RoboilError, check_writable
from .html_report import CHART_CSS, REPORT_CSS, line_chart, relative_url
from .progress import progress_bar
from .store import EpisodeStore
from .video import write_mp4

PAGE_FILE = "index.html"
PAGE_TITLE = "<title>roboil store: "  # how the page begins, after its charset: to know a page of ours again
VIDEO_DIR = "videos"
DEFAULT_EPISODES = 20  # episodes given videos and plots; the table lists all
MAX_DIMS = 32  # lines per chart; an array with more dimensions plots its first ones
MAX_LOW_DIM = 256  # a non-camera array with more numbers per step is listed, not plotted

PAGE_CSS = """h2{margin-top:1.5em} table{border-collapse:collapse} tr:nth-child(even){background:#f4f4f4}
table.kv th,table.kv td{text-align:left;vertical-align:top} table.kv th{font-weight:normal;color:#555}
td.yes{color:#2a2;font-weight:bold} td.no{color:#c22;font-weight:bold} td.left{text-align:left}
details.episode{border:1px solid #ccc;border-radius:4px;margin:8px 0;padding:4px 10px}
details.episode>summary{cursor:pointer;font-weight:bold;padding:4px 0}
details.ok>summary{color:#2a2} details.fail>summary{color:#c22}
video{image-rendering:pixelated} """ + CHART_CSS + """
table.arrays th,table.arrays td{text-align:left} #episodes th.left{text-align:left}
.note{color:#777;font-size:13px} #filter-bar{margin:8px 0}"""

SCRIPT = """<script>
// The success filter: rows and episode sections carry data-success (true, false or unknown).
const filter = document.getElementById("filter");
function applyFilter() {
  const want = filter.value;
  let shown = 0, total = 0;
  for (const element of document.querySelectorAll("[data-success]")) {
    const show = want === "all" || element.dataset.success === want;
    element.hidden = !show;
    if (element.tagName === "TR") { total += 1; shown += show; }
  }
  document.getElementById("shown").textContent = shown + " of " + total + " episodes shown";
}
filter.addEventListener("change", applyFilter);
applyFilter();
// A link to an episode opens its section.
function openTarget() {
  const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target && target.tagName === "DETAILS") target.open = true;
}
addEventListener("hashchange", openTarget);
openTarget();
</script>
"""


def default_out(store_path: str | Path) -> Path:
    """``<parent>/<name>_view`` beside the store, its ``.zarr`` suffix dropped (``demos.zarr`` -> ``demos_view``)."""
    path = Path(store_path).absolute()
    name = path.name[:-len(".zarr")] if path.name.endswith(".zarr") and len(path.name) > 5 else path.name
    return path.parent / f"{name}_view"


def view_store(store_path: str | Path, out: str | Path | None = None, episodes: int = DEFAULT_EPISODES,
               progress: bool = True) -> Path:
    """Write the page (``index.html``) and the videos of the first ``episodes`` episodes into ``out`` (default
    :func:`default_out`); returns the page's path. The store is only read."""
    if episodes < 0:
        raise RoboilError(f"--episodes must be at least 0, got {episodes}")
    store = EpisodeStore.open(store_path)
    source = Path(store_path).absolute()
    out = Path(out).absolute() if out is not None else default_out(source)
    if out.resolve() == source.resolve():  # inside it is refused by check_writable, as for every output
        raise RoboilError(f"--out '{out}' is the store; write the page elsewhere (default: beside the store)")
    if out.exists() and not out.is_dir():
        raise RoboilError(f"--out '{out}' is a file; name a directory for the page")
    check_writable(out)
    if out.is_dir() and any(out.iterdir()) and not _is_page(out / PAGE_FILE):
        raise RoboilError(f"--out '{out}' holds files of its own, which the page and its videos would replace; "
                          "pass a new or empty directory (default: beside the store)")
    out.mkdir(parents=True, exist_ok=True)
    info = store.info()
    fps = _number(store.attrs.get("fps")) or 10.0
    shown = min(episodes, store.n_episodes)
    attrs = [a if isinstance(a, dict) else {} for a in store.episode_attrs()]
    written: set[Path] = set()
    sections = []
    with progress_bar(shown, "store view", unit="ep", enabled=progress) as bar:
        for index in range(shown):
            sections.append(_episode_section(store, index, attrs[index], out, fps, written))
            bar.update(1)
    for stale in (out / VIDEO_DIR).glob("episode_*.mp4"):  # from an earlier view of more episodes
        if stale not in written:
            stale.unlink()
    page = out / PAGE_FILE
    page.write_text(_page(store, info, attrs, sections, shown, fps))
    return page


def _is_page(path: Path) -> bool:
    """Whether ``path`` is a page this module wrote (an earlier view, which a new one replaces with its videos)."""
    try:
        with open(path, encoding="utf-8") as page:
            return PAGE_TITLE in page.read(200)
    except (OSError, UnicodeDecodeError):
        return False


# ---- the page ------------------------------------------------------------------------------------------------


def _page(store: EpisodeStore, info: dict, attrs: list[dict], sections: list[str], shown: int, fps: float) -> str:
    task = str(store.attrs.get("task", "?"))
    title = f"{task}: {store.n_episodes} episodes, {store.n_steps} steps"
    detail = (f"<h2>Episodes {'0' if shown == 1 else f'0&ndash;{shown - 1}'} in detail</h2>"
              f"<p class=\"note\">videos at the store's {fps:g} fps; click an episode to open or close it" +
              (f"; the first {shown} of {store.n_episodes} are shown (<code>--episodes</code> for more)"
               if shown < store.n_episodes else "") + "</p>" + "".join(sections)) if shown else (
        "<p class=\"note\">no episode shown in detail (<code>--episodes 0</code>)</p>")
    return f"""<!doctype html><meta charset="utf-8">{PAGE_TITLE}{html.escape(store.path.name)}</title>
<style>{REPORT_CSS}
{PAGE_CSS}</style>
<h1>{html.escape(title)}</h1>
<p>{html.escape(str(store.path))}</p>
{_summary(info, fps)}
<h2>Arrays</h2>
{_arrays_table(store, info)}
<h2>Episodes</h2>
<div id="filter-bar"><label>show <select id="filter">
<option value="all">all episodes</option><option value="true">successful</option><option value="false">failed</option>
</select></label> <span id="shown" class="note"></span></div>
{_episode_table(store, attrs, shown)}
{detail}
{SCRIPT}"""


def _summary(info: dict, fps: float) -> str:
    attrs = info["attrs"]
    lengths = info["episode_length"]
    rows = [("task", attrs.get("task", "?")), ("fps", f"{fps:g}"), ("episodes", info["episodes"]),
            ("steps", info["steps"])]
    if lengths:
        rows.append(("episode length", f"mean {lengths['mean']:.1f}, min {lengths['min']}, max {lengths['max']}"))
    rows.append(("success rate", "unknown (no episode says)" if info["success_rate"] is None
                 else f"{info['success_rate']:.2f}"))
    rows.append(("operators", _counts(info["operators"])))
    rows.append(("devices", _counts(info["devices"])))
    timing = info["timing"]
    if timing is None:
        rows.append(("not on time", "no paced episodes (none driven by a person: steps timed by the simulation)"))
    else:
        late = timing["late_episodes"]
        rows.append(("not on time", (f"{len(late)} of {timing['paced_episodes']} paced episodes: "
                                     f"{', '.join(map(str, late))}") if late
                     else f"none ({timing['paced_episodes']} paced episodes all on time)"))
    rows.append(("on disk", _bytes(info["bytes_on_disk"])))
    rows += [(key, _short_json(value)) for key, value in attrs.items() if key not in ("task", "fps")]
    return "<table class=\"kv\">" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                                           for k, v in rows) + "</table>"


def _arrays_table(store: EpisodeStore, info: dict) -> str:
    rows = []
    for key, feature in store.features.items():
        chunks = info["features"][key].get("chunks")
        rows.append(f"<tr><td class=\"left\">{html.escape(key)}</td><td class=\"left\">{html.escape(feature.kind)}"
                    f"</td><td>{html.escape(str(tuple(feature.shape)))}</td><td>{html.escape(feature.dtype)}</td>"
                    f"<td>{html.escape(str(tuple(chunks or ())))}</td>"
                    f"<td class=\"left\">{html.escape(_shown_as(feature))}</td></tr>")
    head = "".join(f"<th>{c}</th>" for c in ("array", "kind", "shape", "dtype", "chunks", "shown as"))
    return f"<table class=\"arrays\"><tr>{head}</tr>{''.join(rows)}</table>"


def _episode_table(store: EpisodeStore, attrs: list[dict], shown: int) -> str:
    lengths = store.episode_lengths
    head = "".join(f"<th>{c}</th>" for c in ("episode", "length", "seed", "success")) + "".join(
        f"<th class=\"left\">{c}</th>" for c in ("source", "device", "operator")) + "<th>on time</th>"
    rows = []
    for index, a in enumerate(attrs):
        success = _success(a)
        on_time = a.get("on_time")
        link = f"<a href=\"#ep-{index}\">{index}</a>" if index < shown else str(index)
        cells = [
            f"<td>{link}</td>", f"<td>{int(lengths[index])}</td>", f"<td>{_text(a.get('seed'))}</td>",
            {"true": '<td class="yes">yes</td>', "false": '<td class="no">no</td>'}.get(success, "<td>&ndash;</td>"),
            f"<td class=\"left\">{_text(a.get('source'))}</td>", f"<td class=\"left\">{_text(a.get('device'))}</td>",
            f"<td class=\"left\">{_text(a.get('operator'))}</td>",
            "<td class=\"no\">late</td>" if on_time is False else
            "<td>yes</td>" if on_time is True else "<td title=\"not paced\">&ndash;</td>",
        ]
        rows.append(f"<tr class=\"episode\" data-episode=\"{index}\" data-success=\"{success}\">{''.join(cells)}</tr>")
    return f"<table id=\"episodes\"><tr>{head}</tr>{''.join(rows)}</table>"


def _episode_section(store: EpisodeStore, index: int, attrs: dict, out: Path, fps: float,
                     written: set[Path]) -> str:
    ends = store.episode_ends
    lo, hi = (int(ends[index - 1]) if index else 0), int(ends[index])
    success = _success(attrs)
    outcome = {"true": "success", "false": "failure"}.get(success, "success unknown")
    css = {"true": "ok", "false": "fail"}.get(success, "")
    videos, plots, notes = [], [], []
    for key, feature in store.features.items():
        kind = _shown_as(feature)
        if kind == "not shown":
            notes.append(f"{key} {tuple(feature.shape)} {feature.dtype}: not shown")
            continue
        try:
            rows = np.asarray(store.array(key)[lo:hi])
        except Exception as e:  # zarr and the codecs raise many types for corrupt chunks
            why = (str(e).strip().splitlines() or [type(e).__name__])[0]
            notes.append(f"{key}: rows {lo}..{hi} fail to decode ({why}); run `roboil store check {store.path}`")
            continue
        if kind == "video":
            path = out / VIDEO_DIR / f"episode_{index:04d}_{_safe(key)}.mp4"
            write_mp4(path, list(_frames(rows)), fps)
            written.add(path)
            videos.append(f"<figure class=\"{css}\"><video controls muted playsinline preload=\"auto\" "
                          f"src=\"{relative_url(path, out)}\"></video><figcaption>{html.escape(key)}</figcaption>"
                          "</figure>")
        else:
            plots.append(_plot(key, rows, feature.shape))
    summary = (f"episode {index} &middot; seed {_text(attrs.get('seed'))} &middot; {hi - lo} steps "
               f"({(hi - lo) / fps:.1f} s) &middot; {outcome}")
    extra = "".join(f"<p class=\"note\">{html.escape(n)}</p>" for n in notes)
    return (f"<details class=\"episode {css}\" id=\"ep-{index}\" data-success=\"{success}\""
            f"{' open' if index == 0 else ''}><summary>{summary}</summary>"
            f"<div class=\"videos\">{''.join(videos)}</div><div class=\"plots\">{''.join(plots)}</div>{extra}"
            "</details>\n")


# ---- charts --------------------------------------------------------------------------------------------------


def _plot(key: str, rows: np.ndarray, shape: tuple[int, ...]) -> str:
    """One chart (:func:`html_report.line_chart`): a polyline per dimension over the episode's steps (non-finite
    values leave gaps), axis labels and ticks, and a legend beneath."""
    steps = rows.shape[0]
    values = rows.reshape(steps, -1)
    dims = values.shape[1]
    plotted = min(dims, MAX_DIMS)
    labels = _dim_labels(key, shape, plotted)
    more = f" <span class=\"note\">(the first {plotted} of {dims} dimensions)</span>" if plotted < dims else ""
    return line_chart(key, values[:, :plotted], labels, [label[len(key):] or key for label in labels],
                      aria=f"{key} over the episode's steps", note=more)


def _dim_labels(key: str, shape: tuple[int, ...], n: int) -> list[str]:
    if not shape:
        return [key]
    return [f"{key}[{','.join(map(str, np.unravel_index(i, shape)))}]" for i in range(n)]


# ---- helpers -------------------------------------------------------------------------------------------------


def _shown_as(feature) -> str:
    """How an array appears: a camera (kind ``pixels``, H x W x 1/3/4 or H x W) as a video, a low-dimensional
    one as a chart."""
    shape = tuple(feature.shape)
    if feature.kind == "pixels" and (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4))):
        return "video"
    size = math.prod(shape)
    if feature.kind != "pixels" and size <= MAX_LOW_DIM and np.dtype(feature.dtype).kind in "biuf":
        return "plot" if size <= MAX_DIMS else f"plot (the first {MAX_DIMS} of {size} dimensions)"
    return "not shown"


def _frames(rows: np.ndarray):
    """RGB uint8 frames from a camera array: grey ones repeated, alpha dropped, other types scaled to 0..255."""
    if rows.dtype != np.uint8:
        finite = rows[np.isfinite(rows)] if rows.dtype.kind == "f" else rows
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        rows = np.nan_to_num((rows.astype(np.float64) - lo) * (255.0 / max(hi - lo, 1e-12)), nan=0.0)
        rows = np.clip(rows, 0, 255).astype(np.uint8)
    if rows.ndim == 3:
        rows = rows[..., None]
    if rows.shape[-1] == 1:
        rows = np.repeat(rows, 3, axis=-1)
    return rows[..., :3]


def _success(attrs: dict) -> str:
    success = attrs.get("success")
    return "unknown" if success is None else "true" if success else "false"


def _text(value) -> str:
    return "&ndash;" if value is None else html.escape(str(value))


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _counts(counts: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "unknown (no episode says)"


def _bytes(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _short_json(value, limit: int = 300) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " ..."


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)


__all__ = ["default_out", "view_store"]
