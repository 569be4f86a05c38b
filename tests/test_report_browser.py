"""report.html in a real browser: headless Chromium opens a small evaluation's report over HTTP, and every
embedded video must decode and be ready to play, its poster too. A video in the codec we used to write (mp4v,
MPEG-4 Part 2) must fail the same check, so the check can tell."""

import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import threading

import pytest

from conftest import run_cli

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
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
            duration: video.duration, shades: shades.size});
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
Promise.all([Promise.all(videos.map(settle)), Promise.all(videos.map(poster))]).then(([played, posters]) => {
  const out = document.createElement("pre");
  out.id = "video-check";
  out.textContent = JSON.stringify({videos: played, posters: posters});
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
    """A small real evaluation with videos: an (untrained) fetch-reach policy, 3 episodes filmed in 2 envs."""
    root = tmp_path_factory.mktemp("browser")
    run_cli("record", "--task", "fetch-reach", "--episodes", 2, "--out", root / "reach.zarr", check=True)
    run_cli("train", "configs/fetch_reach/gcbc.yaml", f"data.path={root / 'reach.zarr'}", "train.steps=1",
            "train.warmup_steps=1", "algorithm.hidden_dims=[32]", "--out", root / "run", check=True)
    run_cli("eval", root / "run", "--episodes", 3, "--envs", 2, "--video", "--out", root / "eval", check=True)
    return root / "eval"


def test_every_video_in_the_report_plays_in_chromium(eval_dir, tmp_path):
    result = check_in_browser(eval_dir, tmp_path)
    assert len(result["videos"]) == 3, result
    for video in result["videos"]:
        assert video["ok"], f"chromium cannot play {video['src']}: {video['error']}"
        assert (video["width"], video["height"]) == (240, 240) and video["duration"] > 1.9  # 51 frames at 25 fps
        assert video["shades"] > 10  # a rendered scene, not a blank frame
    assert all(poster["ok"] for poster in result["posters"]), result["posters"]


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
