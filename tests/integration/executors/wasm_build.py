"""Compile our example C programs to wasm32-wasi with the zig toolchain that the PyPI `ziglang` package
ships (it bundles clang and wasi-libc, so no system toolchain is needed).

Compilation is a test/dev concern, so it lives here and not in `agora`: the node only ever runs
modules. scripts/build_wasm_examples.py uses the same function for the demo.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "wasm"

#: -s strips debug info (modules are ~30 KB instead of ~1 MB); a 1 MiB stack instead of zig's 16 MiB
#: default keeps the initial linear memory small, so memory-limit tests can use small limits
CFLAGS = ["-target", "wasm32-wasi", "-O2", "-s", "-Wl,-z,stack-size=1048576"]


def compile_c(src: Path, out: Path, timeout_s: float = 600.0) -> Path:
    """Compile one C file to a WASI command module; raises RuntimeError with zig's output on failure.
    The first call on a machine builds wasi-libc into zig's cache (tens of seconds); later ones are quick."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ziglang", "cc", *CFLAGS, "-o", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"zig cc failed ({proc.returncode}) for {src}:\n{proc.stdout}\n{proc.stderr}")
    return out
