# Two commands on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
ROBOIL := $(VENV)/bin/roboil
export MUJOCO_GL ?= egl
DEMO := runs/demo

.PHONY: install browser xvfb demo test bench clean

install: $(VENV)/.installed

# torch first: the pinned CPU wheel is on disk; any other spec would pull gigabytes of CUDA packages
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .[dev]
	touch $@

demo: install
	rm -rf $(DEMO)
	$(ROBOIL) record --task fetch-push --episodes 100 --action-noise 0.2 \
		--out $(DEMO)/fetch_push.zarr
	$(ROBOIL) train configs/fetch_push/gcbc.yaml data.path=$(DEMO)/fetch_push.zarr --out $(DEMO)/gcbc
	$(ROBOIL) eval $(DEMO)/gcbc --episodes 50 --envs 2 --seed 100000 --video
	@echo "videos: $(DEMO)/gcbc/eval/videos   report: $(DEMO)/gcbc/eval/report.html"

# Chromium lets tests/test_report_browser.py play report.html's videos. Best effort: without it that test skips.
browser:
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "warning: could not install chromium; tests/test_report_browser.py will skip" >&2

# Xvfb, xdotool and ImageMagick let tests/test_teleop_viewer.py drive the real teleop window. Best effort too.
xvfb:
	@{ command -v Xvfb && command -v xdotool && command -v import; } >/dev/null || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xdotool imagemagick \
		>/dev/null; } || echo "warning: could not install xvfb; tests/test_teleop_viewer.py will skip" >&2

# two workers: most tests wait on one core (a subprocess, a simulator); tests/conftest.py gives each one thread
test: install browser xvfb
	$(PY) -m pytest -q -n 2

# results and how to read them: docs/benchmarks.md (LeRobot runs from its own environment when it is there)
bench: install
	$(PY) tools/bench_loading.py
	$(PY) tools/bench_training.py diffusion --steps 20 --warmup 5
	$(PY) tools/bench_training.py act --steps 20 --warmup 5
	$(PY) tools/bench_channels_last.py
	$(PY) tools/bench_append.py
	$(PY) tools/bench_chunk_crc.py
	$(PY) tools/bench.py

clean:
	rm -rf $(VENV) runs .pytest_cache
