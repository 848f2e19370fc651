"""docs/architecture.md's map of the code (layers, contracts, imports between packages, wire modules, settings
sections) is rendered from the code and must match it.

When this fails: run `.venv/bin/python scripts/gen_architecture_map.py` and commit docs/architecture.md.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.support import ROOT

SCRIPT = ROOT / "scripts" / "gen_architecture_map.py"
DOC = ROOT / "docs" / "architecture.md"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_architecture_map", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_architecture_map", module)
    spec.loader.exec_module(module)
    return module


gen = _load()


def test_docs_architecture_md_map_is_up_to_date() -> None:
    text = DOC.read_text()
    assert text == gen.render(text), (
        "docs/architecture.md is out of date with the code: run .venv/bin/python scripts/gen_architecture_map.py"
    )


def test_the_map_covers_every_package_and_wire_module() -> None:
    """Guards the generator itself: nothing of the code is silently left out of the page."""
    text = gen.render(DOC.read_text())
    packages = [p.name for p in (ROOT / "src" / "agora").iterdir() if (p / "__init__.py").exists()]
    assert packages and all(f"`{p}`" in text for p in packages), [p for p in packages if f"`{p}`" not in text]
    wire = [p.name for p in (ROOT / "src" / "agora" / "wire").glob("*.py") if p.name != "__init__.py"]
    assert all(f"`wire/{name}`" in text for name in wire)
    for section in ("compute", "runner", "placement", "bidder", "ads", "admission"):
        assert f"`--{section}-*`" in text


def test_a_stale_block_is_rendered_again() -> None:
    stale = "<!-- generated:imports -->\nwire -> everything\n<!-- /generated:imports -->"
    text = DOC.read_text()
    start = text.index("<!-- generated:imports -->")
    end = text.index("<!-- /generated:imports -->") + len("<!-- /generated:imports -->")
    broken = text[:start] + stale + text[end:]
    assert broken != text and gen.render(broken) == gen.render(text)
