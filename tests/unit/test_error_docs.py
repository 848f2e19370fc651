"""docs/errors.md is generated from agora.errors.CATALOG and must match it exactly.

When this fails: run `.venv/bin/python scripts/gen_error_docs.py` and commit docs/errors.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agora.errors import CATALOG, ErrorKind
from tests.support import ROOT

SCRIPT = ROOT / "scripts" / "gen_error_docs.py"
DOC = ROOT / "docs" / "errors.md"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_error_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_error_docs", module)
    spec.loader.exec_module(module)
    return module


gen = _load()


def test_docs_errors_md_is_up_to_date() -> None:
    assert DOC.exists(), "docs/errors.md is missing: run .venv/bin/python scripts/gen_error_docs.py"
    assert DOC.read_text() == gen.render(), (
        "docs/errors.md is out of date with agora.errors.CATALOG: run .venv/bin/python scripts/gen_error_docs.py"
    )


def test_every_code_has_one_row_with_its_status_retryable_and_hint() -> None:
    text = gen.render()
    for code, kind in CATALOG.items():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{code}` |")]
        assert len(rows) == 1, code
        cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
        assert cells[1] == str(kind.http_status), code
        assert cells[2] == ("yes" if kind.retryable else "no"), code
        assert cells[3] == gen._cell(kind.hint), code
    assert f"{len(CATALOG)} codes." in text


def test_sections_follow_the_comments_in_errors_py() -> None:
    groups = dict(gen.sections(gen.ERRORS_PY.read_text(), list(CATALOG)))
    assert "internal" in groups["generic"]
    assert "ucan_replayed" in groups["ucan"]
    assert sorted(c for codes in groups.values() for c in codes) == sorted(CATALOG)


def test_a_catalog_change_makes_the_doc_stale() -> None:
    """The guard works: a new code, a changed status or a changed hint all change the rendering."""
    base = gen.render()
    added = {**CATALOG, "zz_new_code": ErrorKind(418, False, "a | pipe")}
    assert gen.render(added) != base
    assert "| `zz_new_code` | 418 | no | a \\| pipe |" in gen.render(added)
    first = next(iter(CATALOG))
    kind = CATALOG[first]
    changed = {**CATALOG, first: ErrorKind(kind.http_status + 1, kind.retryable, kind.hint)}
    assert gen.render(changed) != base
    rehinted = {**CATALOG, first: ErrorKind(kind.http_status, kind.retryable, kind.hint + " More.")}
    assert gen.render(rehinted) != base


def test_check_mode_reports_a_stale_file_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "errors.md"
    out.write_text("stale\n")
    assert gen.main(["--check", "--out", str(out)]) == 1
    assert out.read_text() == "stale\n"
    assert "out of date" in capsys.readouterr().err
    assert gen.main(["--out", str(out)]) == 0
    assert gen.main(["--check", "--out", str(out)]) == 0
    assert out.read_text() == gen.render()


def test_a_missing_file_is_stale(tmp_path: Path) -> None:
    assert gen.main(["--check", "--out", str(tmp_path / "absent.md")]) == 1
