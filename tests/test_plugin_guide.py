"""The plugin guide (docs/plugins.md) is checked: every code block in it runs, in order, as a reader would run
it: Python blocks in one namespace, shell blocks with bash, TOML blocks parsed."""

import contextlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_the_readme_links_the_guide():
    assert "docs/plugins.md" in (ROOT / "README.md").read_text()


def test_every_code_block_of_the_plugin_guide_runs(tmp_path, monkeypatch):
    blocks = BLOCK.findall(GUIDE.read_text())
    assert {language for language, _ in blocks} == {"sh", "toml", "python"} and len(blocks) >= 8
    (tmp_path / "configs").symlink_to(ROOT / "configs")  # shell blocks run as from the repository's root
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    namespace = {"__name__": "guide"}
    for index, (language, code) in enumerate(blocks):
        where = f"block {index} ({language}) of {GUIDE.name}:\n{code}"
        if language == "toml":
            tomllib.loads(code)
        elif language == "sh":
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True, env=env,
                                    timeout=300)
            assert result.returncode == 0, f"{where}\n{result.stdout}\n{result.stderr}"
        else:
            with contextlib.redirect_stdout(open(os.devnull, "w")):
                exec(compile(code, f"<{where}>", "exec"), namespace)
