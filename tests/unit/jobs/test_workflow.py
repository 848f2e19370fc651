"""Workflow DAGs: orders respect every edge, cycles are found and named, unknown names rejected."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.errors import AgoraError
from agora.jobs import (
    check_acyclic,
    dependents_of,
    find_cycle,
    parse_job,
    stages,
    topological_order,
)


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """A random DAG: edges only go from a later node to an earlier one, then names are shuffled."""
    n = draw(st.integers(min_value=1, max_value=25))
    names = [f"t{k}" for k in draw(st.permutations(range(n)))]
    graph: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        deps = draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=min(i, 4))) if i else []
        graph[name] = deps
    order = draw(st.permutations(names))
    return {name: graph[name] for name in order}


@settings(max_examples=100, deadline=None)
@given(dags())
def test_topological_order_respects_every_edge(graph: dict[str, list[str]]) -> None:
    order = topological_order(graph)
    assert sorted(order) == sorted(graph)
    position = {name: i for i, name in enumerate(order)}
    for name, deps in graph.items():
        for dep in deps:
            assert position[dep] < position[name]


@settings(max_examples=100, deadline=None)
@given(dags())
def test_stages_respect_every_edge_and_are_minimal(graph: dict[str, list[str]]) -> None:
    waves = stages(graph)
    level = {name: i for i, wave in enumerate(waves) for name in wave}
    assert sorted(level) == sorted(graph) and all(waves)
    for name, deps in graph.items():
        assert all(level[d] < level[name] for d in deps)
        # as early as possible: a task sits right after its latest dependency
        assert level[name] == (1 + max(level[d] for d in deps) if deps else 0)


@settings(max_examples=100, deadline=None)
@given(dags(), st.data())
def test_a_back_edge_makes_a_reported_cycle(graph: dict[str, list[str]], data: st.DataObject) -> None:
    order = topological_order(graph)
    if len(order) < 2:
        return
    i = data.draw(st.integers(min_value=0, max_value=len(order) - 2))
    j = data.draw(st.integers(min_value=i + 1, max_value=len(order) - 1))
    # order[j] may depend on order[i]; the reverse, plus a path between them, closes a cycle
    cyclic = {k: list(v) for k, v in graph.items()}
    cyclic[order[i]].append(order[j])
    cyclic[order[j]].append(order[i])
    cycle = find_cycle(cyclic)
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) >= 2
    for a, b in itertools.pairwise(cycle):
        assert b in cyclic[a]  # each step of the reported path is a real edge
    with pytest.raises(AgoraError) as info:
        check_acyclic(cyclic)
    assert info.value.code == "workflow_cycle"
    assert " -> ".join(info.value.details["cycle"]) in info.value.message


def test_examples_of_orders_and_stages() -> None:
    graph = {"report": ["train", "eval"], "prep": [], "train": ["prep"], "eval": ["train"], "lint": []}
    assert topological_order(graph) == ["prep", "train", "eval", "report", "lint"]  # earliest-declared ready first
    assert stages(graph) == [["prep", "lint"], ["train"], ["eval"], ["report"]]
    assert dependents_of(graph, "train") == ["report", "eval"]
    assert dependents_of(graph, "lint") == []
    with pytest.raises(AgoraError) as info:
        dependents_of(graph, "nope")
    assert info.value.code == "not_found"


def test_cycle_in_a_spec_is_named_in_order() -> None:
    spec = {
        "name": "loop",
        "tasks": [
            {"name": "a", "module": "m", "depends_on": ["b"]},
            {"name": "b", "module": "m", "depends_on": ["c"]},
            {"name": "c", "module": "m", "depends_on": ["a"]},
            {"name": "d", "module": "m"},
        ],
    }
    with pytest.raises(AgoraError) as info:
        parse_job(spec)
    assert info.value.code == "workflow_cycle"
    assert "a -> b -> c -> a" in info.value.message and info.value.details["cycle"] == ["a", "b", "c", "a"]


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(AgoraError) as info:
        parse_job({"name": "j", "tasks": [{"name": "a", "module": "m", "depends_on": ["a"]}]})
    assert info.value.code == "workflow_cycle" and "a -> a" in info.value.message


def test_unknown_dependency_is_a_field_error() -> None:
    with pytest.raises(AgoraError) as info:
        topological_order({"a": ["ghost"]})
    assert info.value.code == "job_spec_invalid" and info.value.details["errors"][0]["got"] == "ghost"


def test_spec_orders_and_long_chains() -> None:
    spec = parse_job(
        {
            "name": "wf",
            "tasks": [
                {"name": "b", "module": "m", "depends_on": ["a"]},
                {"name": "a", "module": "m"},
                {"name": "c", "module": "m", "depends_on": ["a", "b"]},
            ],
        }
    )
    assert topological_order(spec) == ["a", "b", "c"] and stages(spec) == [["a"], ["b"], ["c"]]
    chain = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(5000)}  # no recursion limit
    assert topological_order(chain)[-1] == "t4999" and len(stages(chain)) == 5000
    chain["t0"] = ["t4999"]
    cycle = find_cycle(chain)
    assert cycle is not None and len(cycle) == 5001
