"""Damaged input never crashes a converter: it converts (with warnings) or raises an AgoraError.

Exhaustive rather than random: every value of every fixture is replaced by every wrong shape, and
every field a converter looks for is added, with every wrong shape, to every mapping of the fixture.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agora.errors import AgoraError
from agora.jobs import ConvertResult, convert
from tests.support import FIXTURES

DATA = Path(__file__).parent / "data"
DOCS: list[tuple[str, str, Any]] = [
    (p.parent.name, p.name, yaml.safe_load(p.read_text()))
    for p in sorted((FIXTURES / "jobspecs").glob("*/*"))
    if p.parent.name in ("kubernetes", "bacalhau")
]
DOCS.append(("nomad", "nomad-api-job.json", json.loads((DATA / "nomad-api-job.json").read_text())))
JUNK: list[Any] = [None, True, -3, "x", [1], [{"a": 1}], {"a": 1}]
SHAPES: list[Any] = ["x", [1], {"a": [1]}]  # wrong shapes for a field that was not there
KEYS = {
    "kubernetes": """metadata labels name generateName namespace spec template containers initContainers
        nodeSelector affinity nodeAffinity requiredDuringSchedulingIgnoredDuringExecution nodeSelectorTerms
        matchExpressions preferredDuringSchedulingIgnoredDuringExecution preference weight key operator values
        env value valueFrom resources requests limits cpu memory nvidia.com/gpu ports image command args
        imagePullPolicy restartPolicy activeDeadlineSeconds completions parallelism backoffLimit""",
    "bacalhau": """Name Type Count Labels Constraints Key Operator Values Tasks Engine Params Image Entrypoint
        Parameters EnvironmentVariables EntryModule Source Env InputSources Alias Target Data URL Bucket
        Publisher ResultPaths Path Resources CPU Memory Disk GPU Network Domains Timeouts ExecutionTimeout
        TotalTimeout""",
    "nomad": """Job Name Type Meta Datacenters Constraints Affinities LTarget RTarget Operand Weight TaskGroups
        Count RestartPolicy ReschedulePolicy Attempts Delay Unlimited Mode EphemeralDisk SizeMB Networks Tasks
        Driver Config image command args entrypoint ports Env Resources CPU Cores MemoryMB Devices Artifacts
        GetterSource RelativeDest Templates EmbeddedTmpl DestPath Lifecycle Hook Sidecar""",
}


def mappings(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from mappings(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from mappings(v, (*path, i))


def with_value(doc: Any, path: tuple[Any, ...], value: Any) -> str:
    """The document as JSON with one value replaced or added (changed in place, then restored)."""
    if not path:
        return json.dumps(value)
    node = doc
    for key in path[:-1]:
        node = node[key]
    missing = object()
    old = node.get(path[-1], missing) if isinstance(node, dict) else node[path[-1]]
    node[path[-1]] = value
    try:
        return json.dumps(doc)
    finally:
        if old is missing:
            del node[path[-1]]
        else:
            node[path[-1]] = old


def damaged(source: str, doc: Any) -> Iterator[str]:
    for path, node in list(mappings(doc)):
        for junk in JUNK:
            yield with_value(doc, path, junk)
        if isinstance(node, dict):
            upper = {k[:1].isupper() for k in node if isinstance(k, str)} or {True, False}
            for key in KEYS[source].split():
                if key not in node and key[:1].isupper() in upper:  # Nomad mixes Go and driver spellings
                    for junk in SHAPES:
                        yield with_value(doc, (*path, key), junk)


@pytest.mark.parametrize(("source", "name", "doc"), DOCS, ids=[f"{s}/{n}" for s, n, _ in DOCS])
def test_damaged_documents_never_crash(source: str, name: str, doc: Any) -> None:
    outcomes = {"converted": 0, "refused": 0}
    for text in damaged(source, copy.deepcopy(doc)):
        try:
            result = convert(text, source, fmt="json")
        except AgoraError:
            outcomes["refused"] += 1
            continue
        except Exception as exc:
            pytest.fail(f"{source}/{name}: {type(exc).__name__}: {exc} on {text[:400]}")
        assert isinstance(result, ConvertResult) and result.spec.tasks
        outcomes["converted"] += 1
    assert outcomes["converted"] and outcomes["refused"]  # both paths were exercised
