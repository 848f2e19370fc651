"""Build examples/wasm/*.c into wasm32-wasi modules (default: examples/wasm/build/).

.venv/bin/python scripts/build_wasm_examples.py [--out DIR] [NAME ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.executors.wasm_build import EXAMPLES, compile_c  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES / "build")
    parser.add_argument("names", nargs="*", help="program names (default: every examples/wasm/*.c)")
    ns = parser.parse_args(argv)
    sources = [EXAMPLES / f"{n}.c" for n in ns.names] if ns.names else sorted(EXAMPLES.glob("*.c"))
    for src in sources:
        if not src.exists():
            print(f"no such example: {src}", file=sys.stderr)
            return 2
        out = compile_c(src, ns.out / f"{src.stem}.wasm")
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
