"""Syntax errors say where (line and column), a Nomad conversion of YAML says what it is, and a job
file can be validated offline (`validate_file`, for `agora job validate FILE`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.jobs import convert, parse_job, validate_file
from tests.support import FIXTURES

BROKEN_YAML = "name: x\ntasks:\n  - name: t\n    module: m.wasm\n   bad: [1,\n"


def _error(text: str) -> AgoraError:
    with pytest.raises(AgoraError) as err:
        parse_job(text)
    return err.value


def test_a_yaml_syntax_error_keeps_its_line_and_column() -> None:
    err = _error(BROKEN_YAML)
    assert err.code == "job_spec_invalid"
    [problem] = err.details["errors"]
    assert (problem["path"], problem["line"], problem["column"]) == ("(document)", 5, 4)
    assert "line 5, column 4: " in err.message and "expected <block end>" in err.message
    assert "<unicode string>" not in err.message  # no parser internals
    assert err.hint.startswith("Fix the YAML syntax at line 5, column 4")  # not "the fields listed in the details"


def test_an_unclosed_quote_names_where_it_opened() -> None:
    err = _error('name: "x\ntasks: []\n')
    assert err.details["errors"][0]["line"] == 3
    assert "from line 1, column 7" in err.message


def test_text_that_looks_like_json_gets_jsons_message() -> None:
    err = _error('{"name": "x",, "tasks": []}')
    [problem] = err.details["errors"]
    assert problem["expected"] == "valid JSON" and (problem["line"], problem["column"]) == (1, 14)
    assert "line 1, column 14: Expecting property name" in err.message


def test_a_converter_keeps_the_line_and_column_too() -> None:
    with pytest.raises(AgoraError) as err:
        convert("apiVersion: batch/v1\nkind: Job\nspec: [1,\n", "kubernetes")
    assert err.value.code == "convert_parse_failed"
    assert (err.value.details["line"], err.value.details["column"]) == (4, 1)
    assert "line 4, column 1: " in err.value.message


def test_nomad_on_a_yaml_file_says_it_is_yaml_not_a_token_dump() -> None:
    text = (FIXTURES / "jobspecs" / "kubernetes" / "job-pi.yaml").read_text()
    with pytest.raises(AgoraError) as err:
        convert(text, "nomad")
    e = err.value
    assert e.code == "convert_parse_failed"
    assert "this looks like YAML; Nomad jobs are HCL or JSON" in e.message and "--from kubernetes" in e.message
    assert "HCL" in e.hint and "--from bacalhau" in e.hint
    assert "Token(" not in e.message and "Expected one of" not in e.message


def test_a_nomad_hcl_syntax_error_is_short_and_says_where() -> None:
    with pytest.raises(AgoraError) as err:
        convert('job "x" {\n  group "g" {\n    count = = 1\n  }\n}\n', "nomad")
    e = err.value
    assert (e.details["line"], e.details["column"]) == (3, 13)
    assert e.message == "cannot read the Nomad file: line 3, column 13: unexpected '= 1'"
    with pytest.raises(AgoraError) as err:
        convert('job "x" {\n  group "g" {\n', "nomad")
    assert err.value.message.endswith("unexpected end of file")


def test_validate_file_gives_the_spec_and_its_warnings(tmp_path: Path) -> None:
    good = tmp_path / "job.yaml"
    good.write_text("name: j\ntasks: [{name: t, module: m.wasm}]\npayment: {budget: 5}\n")
    spec, warnings = validate_file(good)
    assert spec.name == "j" and spec.payment.budget == 5
    assert warnings == []  # placed by the market, the budget caps the bids and settles the contract: in effect
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN_YAML)
    with pytest.raises(AgoraError) as err:
        validate_file(bad)
    assert err.value.details["errors"][0]["line"] == 5
    with pytest.raises(AgoraError) as err:
        validate_file(tmp_path / "missing.yaml")
    assert err.value.code == "not_found"
