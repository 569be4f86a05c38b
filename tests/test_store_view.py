"""`roboil store view`: a static page for an episode store. Its HTML (every episode's row, the success filter,
videos beside it, SVG charts with finite coordinates), a store without cameras (and with gaps in its numbers), and
the page in headless Chromium opened from disk: every video decodes (H.264), the charts are drawn, the filter
hides what it should."""

import html
import json
import math
import re
import shutil
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from conftest import run_cli
from roboil.errors import RoboilError
from roboil.specs import ArrayLayout, Feature
from roboil.store import EpisodeStore
from roboil.store_view import default_out, view_store

CHROMIUM = shutil.which("chromium")
CAMERA = {"pixels": {"cameras": ["top"], "height": 48, "width": 48}}
# pusht's arrays besides the camera: agent_pos (2), block_keypoints (16), block_pose (4), action (2)
CHARTS, LINES = 4, 2 + 16 + 4 + 2


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory):
    """pusht with a camera: two expert episodes that succeed, then one cut at 5 steps that fails."""
    from roboil.record import record

    path = tmp_path_factory.mktemp("view") / "pusht.zarr"
    record("pusht", 2, path, obs_overrides=CAMERA, progress=False)
    record("pusht", 1, path, obs_overrides=CAMERA, max_steps=5, progress=False)
    return path


@pytest.fixture(scope="module")
def mixed_view(mixed_store):
    return view_store(mixed_store, progress=False)


def rows_of(page: str) -> dict[int, str]:
    return {int(i): s for i, s in re.findall(r'<tr class="episode" data-episode="(\d+)" data-success="(\w+)"', page)}


def polylines(page: str) -> list[list[tuple[float, float]]]:
    return [[tuple(map(float, p.split(","))) for p in points.split()]
            for points in re.findall(r'<polyline [^>]*points="([^"]*)"', page)]


def video_codec(path) -> str:
    stderr = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                            text=True).stderr
    return next(line for line in stderr.splitlines() if "Video:" in line)


def test_the_page_lists_every_episode_and_shows_videos_and_charts(mixed_store, mixed_view):
    assert mixed_view == mixed_store.parent / "pusht_view" / "index.html" == default_out(mixed_store) / "index.html"
    page = mixed_view.read_text()
    assert rows_of(page) == {0: "true", 1: "true", 2: "false"}
    assert '<select id="filter">' in page and 'value="true"' in page and 'value="false"' in page
    for text in ("pusht", "success rate", "0.67", "agent_pos", "(48, 48, 3)", "not on time", "scripted: 3"):
        assert text in page, text
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page

    videos = re.findall(r'<video controls muted playsinline[^>]* src="([^"]+)"', page)
    assert videos == [f"videos/episode_000{i}_rgb_top.mp4" for i in range(3)]
    for video in videos:
        assert "h264" in video_codec(mixed_view.parent / video)

    assert page.count('<svg class="plot"') == 3 * CHARTS
    lines = polylines(page)
    assert len(lines) == 3 * LINES  # every dimension of every episode, no gaps in recorded data
    lengths = EpisodeStore.open(mixed_store).episode_lengths
    assert sorted({len(line) for line in lines}) == sorted(set(lengths.tolist()))
    width, height = map(int, re.search(r'viewBox="0 0 (\d+) (\d+)"', page).groups())
    for line in lines:
        for x, y in line:
            assert math.isfinite(x) and math.isfinite(y) and 0 <= x <= width and 0 <= y <= height
        assert len({y for _, y in line}) > 1 or len(line) <= 5  # lines that move are drawn as moving


def test_the_cli_caps_the_episodes_in_detail_but_lists_all(mixed_store, tmp_path):
    out = tmp_path / "view"
    result = run_cli("store", "view", mixed_store, "--out", out, "--episodes", 1, check=True)
    assert str(out / "index.html") in result.stdout
    page = (out / "index.html").read_text()
    assert sorted(rows_of(page)) == [0, 1, 2]
    assert re.findall(r'<details class="episode[^"]*" id="ep-(\d+)"', page) == ["0"]
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["episode_0000_rgb_top.mp4"]
    assert page.count('<svg class="plot"') == CHARTS and "the first 1 of 3" in page

    bad = run_cli("store", "view", mixed_store, "--out", mixed_store / "data")
    assert bad.returncode == 2 and "inside the episode store" in bad.stderr
    bad = run_cli("store", "view", mixed_store, "--out", mixed_store)
    assert bad.returncode == 2 and "is the store; write the page elsewhere" in bad.stderr


def test_the_page_goes_only_where_it_replaces_nothing_but_an_earlier_page(mixed_store, tmp_path):
    """--out of a user's own directory removed their episode_*.mp4 files and index.html; --out of another store
    wrote the page into it."""
    mine = tmp_path / "mine"
    (mine / "videos").mkdir(parents=True)
    (mine / "videos" / "episode_final_cut.mp4").write_text("x")
    (mine / "index.html").write_text("notes")
    result = run_cli("store", "view", mixed_store, "--out", mine)
    assert result.returncode == 2 and result.stderr == (
        f"roboil: error: --out '{mine}' holds files of its own, which the page and its videos would replace; pass a "
        "new or empty directory (default: beside the store)\n")
    assert (mine / "index.html").read_text() == "notes" and (mine / "videos" / "episode_final_cut.mp4").is_file()
    other = shutil.copytree(mixed_store, tmp_path / "other.zarr")
    result = run_cli("store", "view", mixed_store, "--out", other)
    assert result.returncode == 2 and result.stderr == (
        f"roboil: error: '{other}' is an episode store, which writing there would break; pass an output path outside "
        "it\n")
    assert not (other / "index.html").exists()
    view = tmp_path / "view"
    for episodes in (2, 1):  # a page of ours is replaced, with its videos
        run_cli("store", "view", mixed_store, "--out", view, "--episodes", episodes, check=True)
    assert sorted(p.name for p in (view / "videos").iterdir()) == ["episode_0000_rgb_top.mp4"]
    (tmp_path / "empty").mkdir()
    run_cli("store", "view", mixed_store, "--out", tmp_path / "empty", "--episodes", 0, check=True)


def test_a_store_without_cameras_gets_its_table_and_charts(tmp_path):
    """Numbers with gaps (NaN), a constant array and a scalar integer action: lines break at the gaps, every
    coordinate is finite."""
    features = {"state": Feature("proprio", (3,), "float32"), "flag": Feature("proprio", (1,), "float32"),
                "action": Feature("action", (), "int64")}
    layouts = {k: ArrayLayout(time_chunk=64) for k in features}
    path = tmp_path / "plain.zarr"
    with EpisodeStore.create(path, features, layouts, {"task": "toy", "fps": 20}) as store:
        for i, length in enumerate((30, 20)):
            t = np.linspace(0, 3, length, dtype=np.float32)
            state = np.stack([np.sin(t), np.cos(t), t], axis=1)
            state[10:13, 0] = np.nan  # a gap in the first dimension
            state[:, 1][t > 2.5] = np.inf
            store.add_episode({"state": state, "flag": np.ones((length, 1), np.float32),
                               "action": np.arange(length) % 3}, {"seed": i, "success": i == 0, "operator": "ann"})
    page = view_store(path, tmp_path / "out", progress=False).read_text()
    assert "<video" not in page and rows_of(page) == {0: "true", 1: "false"}
    assert page.count('<svg class="plot"') == 2 * 3
    lines = polylines(page)
    # episode 0: state[0] broken by the NaNs into 2 runs, state[1] cut by the infs, state[2], flag, action
    assert len(lines) == (2 + 1 + 1 + 1 + 1) + (2 + 1 + 1 + 1 + 1)
    assert all(math.isfinite(v) for line in lines for point in line for v in point)
    assert not (tmp_path / "out" / "videos").exists() or not any((tmp_path / "out" / "videos").iterdir())

    with pytest.raises(RoboilError, match="at least 0"):
        view_store(path, tmp_path / "out", episodes=-1, progress=False)


# Appended to a copy of the page: after load, each video's state (waiting for its data if it has not arrived
# yet), the charts' sizes with every episode opened, and which rows and sections each filter setting leaves
# visible; the outcome is written into the DOM for --dump-dom.
CHECK = """<script>
function settle(video) {
  return new Promise((done) => {
    const report = () => done({src: video.getAttribute("src"), readyState: video.readyState,
                               duration: video.duration, width: video.videoWidth,
                               error: video.error ? video.error.code + " " + video.error.message : null});
    if (video.readyState >= 2 || video.error) return report();
    video.addEventListener("loadeddata", report, {once: true});
    video.addEventListener("error", report, {once: true});
    setTimeout(report, 8000);
  });
}
function visible(selector) {
  return [...document.querySelectorAll(selector)].filter((e) => e.getClientRects().length > 0)
    .map((e) => e.dataset.episode || e.id);
}
addEventListener("load", () => Promise.all([...document.querySelectorAll("video")].map(settle)).then((videos) => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const charts = [...document.querySelectorAll("svg.plot")].map((svg) => {
    const box = svg.getBoundingClientRect();
    const lines = [...svg.querySelectorAll("polyline")].map((p) => p.getBBox());
    return {width: box.width, height: box.height, lines: lines.length,
            drawn: lines.filter((b) => b.width > 0 || b.height > 0).length};
  });
  const filter = document.getElementById("filter");
  const filtered = {};
  for (const value of ["false", "true", "all"]) {
    filter.value = value;
    filter.dispatchEvent(new Event("change"));
    filtered[value] = {rows: visible("tr.episode"), sections: visible("details.episode"),
                       caption: document.getElementById("shown").textContent};
  }
  const out = document.createElement("pre");
  out.id = "view-check";
  out.textContent = JSON.stringify({videos, charts, filtered});
  document.body.append(out);
}));
</script>
"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not found: install Debian's chromium package (apt-get install "
                    "chromium) to check the store view page in a browser")
def test_the_page_works_in_chromium_from_disk(mixed_view, tmp_path):
    check = mixed_view.parent / "view_check.html"  # beside the page, so its relative video paths hold
    check.write_text(mixed_view.read_text() + CHECK)
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=15000", "--dump-dom",
         check.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="view-check">(.*?)</pre>', dom, re.S)
    assert found, f"the check wrote no result; chromium's page was:\n{dom[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))

    assert len(result["videos"]) == 3
    for video in result["videos"]:
        assert video["error"] is None, video
        assert video["readyState"] >= 2 and video["duration"] > 0 and video["width"] == 48, video
    assert len(result["charts"]) == 3 * CHARTS
    for chart in result["charts"]:
        assert chart["width"] > 0 and chart["height"] > 0, chart
        assert chart["lines"] > 0 and chart["drawn"] == chart["lines"], chart
    filtered = result["filtered"]
    assert filtered["false"]["rows"] == ["2"] and filtered["false"]["sections"] == ["ep-2"], filtered
    assert filtered["true"]["rows"] == ["0", "1"] and filtered["true"]["sections"] == ["ep-0", "ep-1"], filtered
    assert filtered["all"]["rows"] == ["0", "1", "2"] and filtered["all"]["caption"] == "3 of 3 episodes shown"
    assert filtered["false"]["caption"] == "1 of 3 episodes shown"
