"""report.html of a tiny trained run: its charts (the training curves from metrics.jsonl, the success rate's
95% interval, the returns' histogram) drawn where the numbers say, and in a real browser: headless Chromium opens
the report over HTTP, every embedded video must decode and be ready to play, its poster too, and every chart has
a size. A video in the codec we used to write (mp4v, MPEG-4 Part 2) must fail the same check, so the check can
tell."""

import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import math
import threading

import numpy as np
import pytest

from conftest import run_cli
from roboil.evaluate import render_html

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not found: install Debian's chromium package (apt-get install chromium) to "
                             "check that report.html's videos play in a browser")

# Appended to the report: each video is asked to load for real (the report only preloads metadata) and reports
# `canplay`, with its first frame drawn on a canvas, or its media error; the outcome is written into the DOM.
CHECK = """<script>
function settle(video) {
  return new Promise((done) => {
    video.addEventListener("canplay", () => {
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      const context = canvas.getContext("2d");
      context.drawImage(video, 0, 0);
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
      const shades = new Set();
      for (let i = 0; i < pixels.length; i += 4) shades.add(pixels[i]);
      done({src: video.getAttribute("src"), ok: true, width: video.videoWidth, height: video.videoHeight,
            duration: video.duration, readyState: video.readyState, shades: shades.size});
    }, {once: true});
    video.addEventListener("error", () => done({src: video.getAttribute("src"), ok: false,
                                                error: video.error.code + " " + video.error.message}), {once: true});
    video.preload = "auto";
    video.load();
  });
}
function poster(video) {
  return new Promise((done) => {
    const image = new Image();
    image.onload = () => done({src: video.getAttribute("poster"), ok: image.naturalWidth > 0});
    image.onerror = () => done({src: video.getAttribute("poster"), ok: false});
    image.src = video.poster;
  });
}
const videos = [...document.querySelectorAll("video")];
// Each chart's size on the page, and how many of its marks (lines, bars, the dot) are drawn with a size.
const charts = [...document.querySelectorAll("svg.plot")].map((svg) => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll("polyline, rect.bar, rect.interval, circle.rate")].map((m) => m.getBBox());
  return {chart: svg.dataset.metric || svg.dataset.chart, width: box.width, height: box.height,
          marks: marks.length, drawn: marks.filter((b) => b.width > 0 || b.height > 0).length};
});
Promise.all([Promise.all(videos.map(settle)), Promise.all(videos.map(poster))]).then(([played, posters]) => {
  const out = document.createElement("pre");
  out.id = "video-check";
  out.textContent = JSON.stringify({videos: played, posters: posters, charts: charts});
  document.body.append(out);
});
</script>
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def check_in_browser(eval_dir, tmp_path) -> dict:
    """Serve ``eval_dir`` on 127.0.0.1, open its report with the check appended, return what the check wrote."""
    page = eval_dir / "browser_check.html"
    page.write_text((eval_dir / "report.html").read_text() + CHECK)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(eval_dir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
             f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=15000", "--dump-dom",
             f"http://127.0.0.1:{server.server_address[1]}/{page.name}"],
            capture_output=True, text=True, timeout=180).stdout
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r'<pre id="video-check">(.*?)</pre>', dom, re.S)
    assert found, f"the check wrote no result; chromium's page was:\n{dom[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    """A small real evaluation with videos: a barely trained fetch-reach policy (8 steps, logged every 2), 3
    episodes filmed in 2 envs."""
    root = tmp_path_factory.mktemp("browser")
    run_cli("record", "--task", "fetch-reach", "--episodes", 2, "--out", root / "reach.zarr", check=True)
    run_cli("train", "configs/fetch_reach/gcbc.yaml", f"data.path={root / 'reach.zarr'}", "train.steps=8",
            "train.log_every=2", "train.warmup_steps=1", "algorithm.hidden_dims=[32]", "--out", root / "run",
            check=True)
    run_cli("eval", root / "run", "--episodes", 3, "--envs", 2, "--video", "--out", root / "eval", check=True)
    return root / "eval"


@needs_chromium
def test_every_video_in_the_report_plays_in_chromium(eval_dir, tmp_path):
    result = check_in_browser(eval_dir, tmp_path)
    assert len(result["videos"]) == 3, result
    for video in result["videos"]:
        assert video["ok"], f"chromium cannot play {video['src']}: {video['error']}"
        assert (video["width"], video["height"]) == (240, 240) and video["duration"] > 1.9  # 51 frames at 25 fps
        assert video["readyState"] >= 2
        assert video["shades"] > 10  # a rendered scene, not a blank frame
    assert all(poster["ok"] for poster in result["posters"]), result["posters"]
    charts = {chart["chart"]: chart for chart in result["charts"]}
    assert len(charts) == len(result["charts"]) and {"success rate", "return", "loss", "lr"} <= set(charts), charts
    for chart in charts.values():
        assert chart["width"] > 0 and chart["height"] > 0, chart
        assert chart["marks"] > 0 and chart["drawn"] == chart["marks"], chart


@needs_chromium
def test_the_check_fails_on_a_video_browsers_refuse(eval_dir, tmp_path):
    import cv2

    copy = tmp_path / "eval"
    shutil.copytree(eval_dir, copy)
    video = copy / "videos" / "seed_100001.mp4"
    capture = cv2.VideoCapture(str(video))
    frames = []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    capture.release()
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (240, 240))
    for frame in frames:  # re-encoded as before the fix: MPEG-4 Part 2
        writer.write(frame)
    writer.release()
    result = check_in_browser(copy, tmp_path)
    outcome = {v["src"]: v for v in result["videos"]}
    refused = outcome["videos/seed_100001.mp4"]
    assert not refused["ok"] and refused["error"].startswith("4 "), refused  # 4: MEDIA_ERR_SRC_NOT_SUPPORTED
    assert outcome["videos/seed_100000.mp4"]["ok"] and outcome["videos/seed_100002.mp4"]["ok"]


# ---- the charts in the page's SVG --------------------------------------------------------------------------------


def attributes(tag: str) -> dict[str, str]:
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


def svgs(page: str, attribute: str) -> dict[str, str]:
    """The page's charts ``<svg ... data-ATTRIBUTE="name">...</svg>`` by name, each with its caption."""
    return {name: body for name, body in re.findall(
        rf'<svg class="plot[^"]*" data-{attribute}="([^"]+)"(.*?</svg><figcaption>.*?</figcaption>)', page, re.S)}


def test_the_report_draws_the_training_curves(eval_dir):
    """A chart per numeric metric of metrics.jsonl (loss and lr at least), a point per logged step, its
    coordinates finite, inside the chart, in step order and placed by value (y linear in it, or in its log)."""
    rows = [json.loads(line) for line in (eval_dir.parent / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {"loss", "lr"} <= set(rows[0])
    metrics = [key for key in rows[0] if key not in ("step", "time")]
    charts = svgs((eval_dir / "report.html").read_text(), "metric")
    assert list(charts) == metrics
    for key, chart in charts.items():
        width, height = map(float, re.search(r'viewBox="0 0 (\S+) (\S+)"', chart).groups())
        lines = re.findall(r'<polyline [^>]*points="([^"]*)"', chart)
        assert len(lines) == 1, (key, lines)
        points = np.array([tuple(map(float, p.split(","))) for p in lines[0].split()])
        assert len(points) == len(rows), (key, points)
        assert all(math.isfinite(v) for v in points.ravel())
        assert ((0 <= points[:, 0]) & (points[:, 0] <= width) & (0 <= points[:, 1]) & (points[:, 1] <= height)).all()
        steps = np.array([row["step"] for row in rows], float)
        slope, _ = np.polyfit(steps, points[:, 0], 1)  # x: the step, left to right
        assert slope > 0 and np.abs(np.polyval(np.polyfit(steps, points[:, 0], 1), steps) - points[:, 0]).max() < 0.2
        values = np.array([row[key] for row in rows], float)
        if "log scale" in chart:
            values = np.log10(values)
        fit = np.polyfit(values, points[:, 1], 1)  # y: the value, upwards (SVG's y grows downwards)
        assert fit[0] < 0 and np.abs(np.polyval(fit, values) - points[:, 1]).max() < 0.2, (key, values, points)


def test_the_report_draws_the_success_interval_of_eval_json(eval_dir):
    """The band spans success_ci95 and the dot sits at success_rate, read back through the 0..1 axis's ticks."""
    report = json.loads((eval_dir / "eval.json").read_text())
    chart = svgs((eval_dir / "report.html").read_text(), "chart")["success rate"]
    ticks = {float(tick["data-value"]): float(tick["x1"])
             for tick in map(attributes, re.findall(r'<line class="tick"[^>]*>', chart))}
    assert sorted(ticks) == [0, 0.25, 0.5, 0.75, 1]

    def value(x: float) -> float:
        return (x - ticks[0]) / (ticks[1] - ticks[0])

    band = attributes(re.search(r'<rect class="interval"[^>]*>', chart).group(0))
    dot = attributes(re.search(r'<circle class="rate"[^>]*>', chart).group(0))
    lo, hi = report["success_ci95"]
    assert value(float(band["x"])) == pytest.approx(lo, abs=1e-3)
    assert value(float(band["x"]) + float(band["width"])) == pytest.approx(hi, abs=1e-3)
    assert value(float(dot["cx"])) == pytest.approx(report["success_rate"], abs=1e-3)
    assert hi - lo > 0.1  # 3 episodes: a wide interval, so the check above can tell the ends apart


def test_the_report_draws_a_histogram_of_every_episode_return(eval_dir):
    """One bar count per episode in all, each bar counting the episodes of its outcome in its bin, its height
    proportional to its count."""
    report = json.loads((eval_dir / "eval.json").read_text())
    chart = svgs((eval_dir / "report.html").read_text(), "chart")["return"]
    bars = [attributes(tag) for tag in re.findall(r'<rect class="bar [^>]*>', chart)]
    assert sum(int(bar["data-count"]) for bar in bars) == report["n_episodes"] == len(report["episodes"]) == 3
    top = max(float(bar["data-hi"]) for bar in bars)
    for bar in bars:
        lo, hi, success = float(bar["data-lo"]), float(bar["data-hi"]), bar["class"] == "bar ok"
        inside = [e for e in report["episodes"] if lo <= e["return"] < hi or e["return"] == hi == top]
        assert int(bar["data-count"]) == sum(e["success"] == success for e in inside), (bar, inside)
        assert float(bar["height"]) / int(bar["data-count"]) == pytest.approx(
            float(bars[0]["height"]) / int(bars[0]["data-count"]), abs=0.02)


def test_a_checkpoint_away_from_its_run_gets_a_report_without_the_curve(eval_dir, tmp_path):
    """Evaluated from a copy of its checkpoint, the run has no metrics.jsonl: the report says so and keeps the rest;
    the checkpoint inside its run finds the run's metrics."""
    report = json.loads((eval_dir / "eval.json").read_text())
    checkpoint = next((eval_dir.parent / "run" / "checkpoints").glob("step_*"))
    shutil.copytree(checkpoint, tmp_path / "copied")
    page = render_html({**report, "run": str(tmp_path / "copied")}, (), eval_dir)
    assert "training curve unavailable" in page and "data-metric" not in page
    assert set(svgs(page, "chart")) == {"success rate", "return"} and page.count("<video") == 3
    inside = render_html({**report, "run": str(checkpoint)}, (), eval_dir)
    assert "unavailable" not in inside and {"loss", "lr"} <= set(svgs(inside, "metric"))
    assert "http://" not in inside.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in inside


def test_the_training_curves_of_a_longer_run(eval_dir, tmp_path):
    """A loss spanning four decades on a log axis, a metric logged only now and then (drawn at its own steps), a
    NaN (a gap), a torn last line (skipped), and a dashed line at the evaluated checkpoint's step."""
    run = tmp_path / "run"
    checkpoint = next((eval_dir.parent / "run" / "checkpoints").glob("step_*"))
    shutil.copytree(checkpoint, run / "checkpoints" / "step_00000500")
    (run / "checkpoints" / "last").write_text("step_00000500")
    steps = np.arange(100, 1001, 100)
    rows = [{"step": int(s), "time": 0.1 * i, "loss": 10.0 ** (-4 * i / 9), "lr": 1e-3 * (1 - i / 9),
             "grad_norm": float("nan") if i == 4 else 1.0 + i % 3, **({"return": -float(i)} if i % 3 == 0 else {})}
            for i, s in enumerate(steps)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows) + '{"step": 1100, "lo')
    report = json.loads((eval_dir / "eval.json").read_text())
    charts = svgs(render_html({**report, "run": str(run)}, (), eval_dir), "metric")
    assert list(charts) == ["loss", "lr", "grad_norm", "return"]

    def lines(chart):
        return [np.array([tuple(map(float, p.split(","))) for p in points.split()])
                for points in re.findall(r'<polyline [^>]*points="([^"]*)"', chart)]

    loss, = lines(charts["loss"])
    assert "log scale" in charts["loss"] and "log scale" not in charts["lr"]
    fit = np.polyfit(np.log10([row["loss"] for row in rows]), loss[:, 1], 1)
    assert np.abs(np.polyval(fit, np.log10([row["loss"] for row in rows])) - loss[:, 1]).max() < 0.2
    assert [len(line) for line in lines(charts["grad_norm"])] == [4, 5]  # broken at the NaN
    returns, = lines(charts["return"])
    x = dict(zip(steps, loss[:, 0]))
    assert returns[:, 0].tolist() == [x[s] for s in (100, 400, 700, 1000)]
    markers = [attributes(tag) for tag in re.findall(r'<line class="marker"[^>]*>', charts["lr"])]
    assert len(markers) == 1 and float(markers[0]["x1"]) == pytest.approx(x[500], abs=0.1)
