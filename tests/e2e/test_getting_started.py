"""docs/getting-started.md's "first ten minutes" run as written: every `$ ` line of the marked block, in
order, from a clean home and devnet directory, each one exiting 0, the whole under the 10-minute limit (the
test's timeout). How long each command took is printed (`pytest -s`) and written to the test's tmp dir."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, require_binary

GUIDE = ROOT / "docs" / "getting-started.md"
MARK = "<!-- first-ten-minutes"


def commands(text: str) -> list[str]:
    """The `$ ` lines of the first fenced block after the marker, without their trailing `# comment`."""
    after = text.split(MARK, 1)[1]
    block = re.search(r"```console\n(.*?)```", after, flags=re.S)
    assert block is not None, "no console block after the marker"
    return [re.sub(r"\s+#.*$", "", ln[2:]).strip() for ln in block.group(1).splitlines() if ln.startswith("$ ")]


def test_the_block_is_found_and_reads_as_commands() -> None:
    cmds = commands(GUIDE.read_text())
    assert cmds[0] == "agora init" and cmds[-1] == "agora devnet down"
    assert all(c.startswith(("agora ", "AGORA_NODE=")) for c in cmds), cmds


@pytest.mark.timeout(600)  # the guide's promise: ten minutes
def test_the_first_ten_minutes_run_as_written(tmp_path: Path) -> None:
    require_binary("bash", "bash")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    agora = bin_dir / "agora"  # `agora` as the guide types it: this checkout's CLI
    agora.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m agora.cli "$@"\n')
    agora.chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AGORA_")},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path / "home"),
        "AGORA_HOME": str(tmp_path / "home" / ".agora"),
        "AGORA_DEVNET_DIR": str(tmp_path / "devnet"),
        "AGORA_BENCHMARK": "off",
    }
    (tmp_path / "home").mkdir()
    timings: list[dict[str, object]] = []
    try:
        for cmd in commands(GUIDE.read_text()):
            t0 = time.monotonic()
            proc = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            timings.append({"command": cmd, "seconds": round(time.monotonic() - t0, 2)})
            assert proc.returncode == 0, f"{cmd!r} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            if cmd.startswith("agora devnet up"):
                assert (tmp_path / "devnet" / "devnet.json").is_file()  # the devnet lives in the test's directory
            if cmd.startswith("AGORA_NODE=node-2 agora job run"):
                assert "completed" in proc.stdout + proc.stderr, proc.stdout
    finally:
        if not any(t["command"] == "agora devnet down" for t in timings):
            subprocess.run(["bash", "-c", "agora devnet down"], cwd=ROOT, env=env, capture_output=True, timeout=120)
        (tmp_path / "timings.json").write_text(json.dumps(timings, indent=2))
        for t in timings:
            print(f"{t['seconds']:>7.2f}s  {t['command']}")
