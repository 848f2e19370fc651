"""The convert() entry point: dispatch, aliases and the unknown-engine refusal."""

from __future__ import annotations

import pytest

from agora.errors import AgoraError
from agora.jobs import ConvertResult, convert
from tests.support import FIXTURES

PI = (FIXTURES / "jobspecs" / "kubernetes" / "job-pi.yaml").read_text()


@pytest.mark.parametrize("source", ["kubernetes", "Kubernetes", "k8s"])
def test_dispatch_and_aliases(source: str) -> None:
    result = convert(PI, source)
    assert isinstance(result, ConvertResult) and result.spec.name == "pi"


def test_bytes_are_accepted() -> None:
    assert convert(PI.encode(), "kubernetes").spec.tasks[0].image == "perl"


@pytest.mark.parametrize("source", ["slurm", "", "docker-compose"])
def test_unknown_engine(source: str) -> None:
    with pytest.raises(AgoraError) as info:
        convert(PI, source)
    assert info.value.code == "convert_unknown_engine"
    assert "kubernetes" in info.value.message
