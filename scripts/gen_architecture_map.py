"""Regenerate the parts of docs/architecture.md that are facts about the code, so the map cannot go stale.

.venv/bin/python scripts/gen_architecture_map.py           # rewrite the generated blocks in place
.venv/bin/python scripts/gen_architecture_map.py --check   # exit 1 if docs/architecture.md is out of date

Each generated block sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`; everything
else in the page is prose and left alone. The blocks:

- `layers`: the rows of the import-linter layers contract in pyproject.toml (top first), each package with
  its one-line role (`ROLES` below, else the first line of its `__init__` docstring);
- `contracts`: every import-linter contract, with what it forbids;
- `imports`: what each package imports today (first-party, from the import graph import-linter builds);
- `wire`: the modules of `agora.wire`, one per protocol, with the first line of each docstring;
- `settings`: the sections of the settings schema (`NodeConfig`): flag and environment prefixes, how many
  settings each has, and its help.

tests/unit/test_architecture_doc.py fails when the page is stale: run this script and commit the page.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

DOC = ROOT / "docs" / "architecture.md"
PYPROJECT = ROOT / "pyproject.toml"
SRC = ROOT / "src" / "agora"

ROLES = {
    "cli": "the `agora` command (Typer), one module per noun",
    "devnet": "hub + N nodes as local processes; `make demo`",
    "daemon": "the node process: argument parsing, run loop, ready line",
    "api": "FastAPI app, routes per noun, local-only guard",
    "dashboard": "web pages under `/ui` (Jinja2, vendored htmx), reading the node only through its API",
    "node": "the composition root: builds a `Node` from `NodeConfig`",
    "orchestrator": "requester side (job runner, market placement, re-placement)",
    "compute": "provider side (allocations, grants, bidder, capacity ads)",
    "market": "offers, matching with diagnostics, strategies, bidding rules, reservations, the market index "
    "(memory, NATS KV)",
    "executors": "sandboxes behind one interface (wasm, process, docker, firecracker)",
    "storage": "content-addressed stores, input fetchers, the hub's object store, S3",
    "resources": "detection, benchmark, capability comparator, live capacity",
    "jobs": "job spec parsing and validation, workflow DAG, converters",
    "discovery": "signed announcements, the peer table",
    "ledger": "double-entry journal, escrow, settlement, trust (issue 9)",
    "actor": "actors, behaviors, dispatch runtime, admission limits, supervision",
    "transport": "`Transport` interface; memory and NATS; the hub process",
    "wire": "signed messages; one typed module per protocol (below)",
    "ucan": "UCAN 1.0 envelope, delegation, invocation, policy, chain validation, replay cache",
    "identity": "keys and did:key",
    "store": "SQLite/memory document store and event log",
    "telemetry": "logs, metrics, events",
    "codec": "strict DAG-CBOR, CID, multibase",
    "models": "pure data (capability, job spec, offers)",
    "errors": "the error catalog",
    "clock": "`Clock` (system, manual)",
}

_BLOCK = re.compile(r"(<!-- generated:(?P<name>[a-z]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.S)


def _short(name: str) -> str:
    return name.removeprefix("agora.")


def _doc_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    return first


def _contracts() -> list[dict[str, object]]:
    return list(tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"])


def layers() -> str:
    [contract] = [c for c in _contracts() if c["type"] == "layers"]
    rows = list(contract["layers"])  # type: ignore[call-overload]
    out = ["| row | packages | what they are |", "| --- | --- | --- |"]
    for n, row in zip(range(len(rows), 0, -1), rows, strict=True):
        names = [_short(p.strip()) for p in str(row).split("|")]
        roles = [ROLES.get(p) or _doc_line(SRC / p / "__init__.py") for p in names]
        bar = " \\| "
        out.append(f"| {n} | {bar.join(f'`{p}`' for p in names)} | {bar.join(roles)} |")
    return "\n".join(out) + "\n"


def contracts() -> str:
    out = []
    for c in _contracts():
        if c["type"] == "layers":
            out.append(f"- **{c['name']}** (layers): the table above.")
        elif c["type"] == "forbidden":
            src = ", ".join(f"`{_short(m)}`" for m in c["source_modules"])  # type: ignore[attr-defined]
            bad = ", ".join(f"`{_short(m)}`" for m in c["forbidden_modules"])  # type: ignore[attr-defined]
            out.append(f"- **{c['name']}** (forbidden): {src} must not import {bad}.")
        else:
            out.append(f"- **{c['name']}** ({c['type']}).")
    return "\n".join(out) + "\n"


def imports() -> str:
    import grimp

    graph = grimp.build_graph("agora")
    deps: dict[str, set[str]] = defaultdict(set)

    def package(module: str) -> str:
        return module.split(".")[1]

    for module in graph.modules:
        if module == "agora" or module == "agora.__main__":
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != "agora" and package(imported) != package(module):
                deps[package(module)].add(package(imported))
    width = max(len(p) for p in deps)
    lines = [f"{p:<{width}} -> {' '.join(sorted(deps[p]))}" for p in sorted(deps)]
    return "```\n" + "\n".join(lines) + "\n```\n"


def wire() -> str:
    out = ["| module | what it carries |", "| --- | --- |"]
    for path in sorted((SRC / "wire").glob("*.py")):
        if path.name == "__init__.py":
            continue
        out.append(f"| `wire/{path.name}` | {_doc_line(path)} |")
    return "\n".join(out) + "\n"


def settings() -> str:
    from agora.node.config import NodeConfig
    from agora.node.settings import schema

    every = schema(NodeConfig)
    out = ["| section | type | flags | environment | settings | what |", "| --- | --- | --- | --- | --- | --- |"]
    top = [s for s in every if len(s.path) == 1 and not s.section_toggle]
    out.append(
        f"| (top level) | `node.config.NodeConfig` | `--home`, `--hub-url`, `--api-port`... | `AGORA_HOME`... "
        f"| {len(top)} | identity, hubs, API, discovery, limits of the node itself |"
    )
    for f in dataclasses.fields(NodeConfig):
        inner = [s for s in every if len(s.path) > 1 and s.path[0] == f.name]
        if not inner:
            continue
        prefix = f.name.replace("_", "-")
        help_text = str(f.metadata.get("help", ""))
        out.append(
            f"| `{f.name}` | `{_type_name(f.name)}` | `--{prefix}-*` | `AGORA_{f.name.upper()}_*` | {len(inner)} "
            f"| {help_text} |"
        )
    return "\n".join(out) + "\n"


def _type_name(field: str) -> str:
    from typing import get_type_hints

    from agora.node.config import NodeConfig

    tp = get_type_hints(NodeConfig)[field]
    for arg in (tp, *getattr(tp, "__args__", ())):
        if dataclasses.is_dataclass(arg) and isinstance(arg, type):
            return f"{_short(arg.__module__)}.{arg.__qualname__}"
    return str(tp)


RENDER = {"layers": layers, "contracts": contracts, "imports": imports, "wire": wire, "settings": settings}


def render(text: str) -> str:
    """`text` (the page) with every generated block rendered from the code."""
    seen: set[str] = set()

    def block(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in RENDER:
            raise SystemExit(f"docs/architecture.md: unknown generated block {name!r}")
        seen.add(name)
        return m.group(1) + RENDER[name]() + m.group(4)

    out = _BLOCK.sub(block, text)
    missing = set(RENDER) - seen
    if missing:
        raise SystemExit(f"docs/architecture.md lacks the generated block(s): {', '.join(sorted(missing))}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is out of date")
    args = parser.parse_args()
    text = DOC.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print("docs/architecture.md is out of date: run .venv/bin/python scripts/gen_architecture_map.py")
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
