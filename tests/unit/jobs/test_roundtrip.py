"""Property: any valid spec, written in any accepted spelling, parses to a JobSpec that round-trips
through to_dict(), JSON and YAML unchanged, with units turned into the right integers."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.codec import decode, encode
from agora.jobs import parse_job

NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9, "": 1}


@st.composite
def byte_quantities(draw: st.DrawFn) -> tuple[Any, int]:
    """(what the user writes, the bytes it means)."""
    n = draw(st.integers(min_value=1, max_value=4096))
    unit = draw(st.sampled_from(sorted(UNITS)))
    if unit == "" and draw(st.booleans()):
        return n, n
    return f"{n}{unit}", n * UNITS[unit]


@st.composite
def cpus(draw: st.DrawFn) -> tuple[Any, int]:
    milli = draw(st.integers(min_value=1, max_value=64_000))
    form = draw(st.sampled_from(["m", "cores", "str"]))
    if form == "m":
        return f"{milli}m", milli
    cores = milli // 1000 or 1
    return (cores if form == "cores" else str(cores)), cores * 1000


@st.composite
def durations(draw: st.DrawFn) -> tuple[Any, int]:
    n = draw(st.integers(min_value=1, max_value=500))
    unit, factor = draw(st.sampled_from([("", 1), ("s", 1), ("m", 60), ("h", 3600)]))
    return (n if unit == "" else f"{n}{unit}"), n * factor


@st.composite
def tasks(draw: st.DrawFn, name: str, earlier: list[str]) -> tuple[dict[str, Any], dict[str, int]]:
    engine = draw(st.sampled_from(["wasm", "process", "docker", "firecracker"]))
    task: dict[str, Any] = {"name": name, "engine": engine}
    if engine == "wasm":
        task["module"] = draw(st.sampled_from(["a.wasm", "https://example.org/m.wasm", "sha256:" + "ab" * 32]))
    if engine == "process":
        task["command"] = draw(st.lists(TEXT, min_size=1, max_size=3))
    if engine in ("docker", "firecracker"):
        task["image"] = draw(st.sampled_from(["busybox:1.37", "ghcr.io/x/y@sha256:" + "0" * 64]))
        if draw(st.booleans()):
            task["command"] = draw(st.lists(TEXT, max_size=2))
    if engine == "docker" and draw(st.booleans()):
        task["allow_pull"] = draw(st.booleans())
    task["args"] = draw(st.lists(TEXT, max_size=3))
    task["env"] = draw(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), TEXT, max_size=3))
    (cpu, cpu_m), (mem, mem_b), (disk, disk_b) = draw(cpus()), draw(byte_quantities()), draw(byte_quantities())
    task["resources"] = {"cpu": cpu, "memory": mem, "disk": disk}
    if draw(st.booleans()):
        task["resources"]["gpu"] = {"count": draw(st.integers(1, 8)), "model": "a100", "vram": "40Gi"}
    timeout, timeout_s = draw(durations())
    task["timeout"] = timeout
    task["network"] = draw(st.booleans())
    task["depends_on"] = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
    n_in = draw(st.integers(0, 2))
    task["inputs"] = [
        {
            "name": f"in{i}",
            "source": draw(
                st.sampled_from(
                    [
                        {"type": "inline", "content": "hello"},
                        {"type": "http", "url": "https://example.org/data"},
                        {"type": "s3", "bucket": "my-bucket", "key": "k/", "region": "eu"},
                        {"type": "hub", "name": "obj"},
                        {"type": "local", "path": "data/x"},
                    ]
                )
            ),
        }
        for i in range(n_in)
    ]
    task["outputs"] = (
        [{"name": "out", "publish": {"type": "s3", "bucket": "out-bucket"}}] if draw(st.booleans()) else []
    )
    return task, {"cpu": cpu_m, "memory": mem_b, "disk": disk_b, "timeout": timeout_s}


@st.composite
def specs(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, int]]]:
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    made = [draw(tasks(n, names[:i])) for i, n in enumerate(names)]
    spec: dict[str, Any] = {
        "name": draw(
            st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
                str.strip
            )
        ),
        "type": "batch",
        "count": draw(st.integers(1, 100)),
        "tasks": [t for t, _ in made],
        "constraints": draw(
            st.lists(
                st.sampled_from(
                    [
                        {"key": "arch", "op": "==", "value": "x86_64"},
                        {"key": "labels.zone", "op": "in", "value": ["a", "b"]},
                        {"key": "gpu_model", "op": "exists"},
                        {"key": "memory_bytes", "op": ">=", "value": 1024},
                        {"key": "trust", "op": "<=", "value": 0.5},
                    ]
                ),
                max_size=3,
            )
        ),
        "affinities": draw(
            st.lists(
                st.builds(
                    lambda w, v: {"key": "location", "op": "==", "value": v, "weight": w},
                    st.integers(1, 100) | st.integers(-100, -1),
                    st.sampled_from(["eu", "us"]),
                ),
                max_size=2,
            )
        ),
        "placement": {"strategy": draw(st.sampled_from(["cheapest", "fastest", "balanced", "spread"]))},
        "payment": {"mode": draw(st.sampled_from(["pay_before", "pay_after"])), "budget": draw(st.integers(0, 10**12))},
        "retry": {"attempts": draw(st.integers(0, 100)), "backoff": draw(durations())[0]},
        "labels": draw(st.dictionaries(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), TEXT, max_size=3)),
    }
    if draw(st.booleans()):
        spec["deadline"] = draw(st.sampled_from([3600, "2h", "2030-06-01T12:00:00Z", "2030-06-01T14:00:00+02:00"]))
    if draw(st.booleans()):
        spec["placement"]["min_trust"] = draw(st.floats(0, 1))
    units = [u for _, u in made]
    if draw(st.booleans()):  # a service whose tasks run until cancelled
        spec["type"] = "service"
        for task, u in zip(spec["tasks"], units, strict=True):
            task["timeout"] = None
            u["timeout"] = None  # type: ignore[assignment]
    return spec, units


@settings(max_examples=75, deadline=None)
@given(specs())
def test_random_specs_round_trip(case: tuple[dict[str, Any], list[dict[str, int]]]) -> None:
    raw, units = case
    spec = parse_job(raw)
    for task, expected in zip(spec.tasks, units, strict=True):
        assert task.resources.cpu == expected["cpu"]
        assert task.resources.memory == expected["memory"]
        assert task.resources.disk == expected["disk"]
        assert task.timeout == expected["timeout"]
    data = spec.to_dict()
    assert parse_job(data) == spec
    assert parse_job(data).to_dict() == data  # canonical form is a fixed point
    assert parse_job(json.dumps(data), fmt="json") == spec
    assert parse_job(yaml.safe_dump(data, allow_unicode=True), fmt="yaml") == spec
    assert parse_job(decode(encode(data))) == spec  # travels over the wire as DAG-CBOR
