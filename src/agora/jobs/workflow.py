"""Workflows: the tasks of a job and their `depends_on` edges form a DAG; this is its graph logic.

Orders are deterministic (ties broken by declaration order) so every node that looks at the same
spec computes the same schedule. Everything is iterative: a 10,000-task chain must not hit Python's
recursion limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from agora.errors import AgoraError
from agora.models.job import JobSpec

Graph = Mapping[str, Sequence[str]]  # task name -> the names it depends on, in declaration order


def dependency_graph(spec: JobSpec | Graph) -> dict[str, tuple[str, ...]]:
    """task -> its dependencies; unknown dependency names are `job_spec_invalid`."""
    graph = {t.name: t.depends_on for t in spec.tasks} if isinstance(spec, JobSpec) else dict(spec)
    errors = [
        {"path": f"{name}.depends_on", "expected": "the name of a task of this job", "got": dep}
        for name, deps in graph.items()
        for dep in deps
        if dep not in graph
    ]
    if errors:
        raise AgoraError("job_spec_invalid", f"unknown dependency {errors[0]['got']!r}", details={"errors": errors})
    return {name: tuple(deps) for name, deps in graph.items()}


def find_cycle(graph: Graph) -> list[str] | None:
    """A dependency cycle as a closed path (["a", "b", "a"]: a depends on b, b on a), or None."""
    state: dict[str, int] = {}  # 1 = on the current DFS path, 2 = done
    for root in graph:
        if state.get(root):
            continue
        path: list[str] = [root]
        iters = [iter(graph[root])]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif nxt not in graph or state.get(nxt) == 2:
                continue
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            else:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(graph[nxt]))
    return None


def check_acyclic(spec: JobSpec | Graph) -> None:
    graph = dependency_graph(spec)
    cycle = find_cycle(graph)
    if cycle is not None:
        shown = " -> ".join(cycle)
        raise AgoraError("workflow_cycle", f"tasks depend on each other in a cycle: {shown}", details={"cycle": cycle})


def stages(spec: JobSpec | Graph) -> list[list[str]]:
    """Tasks grouped into waves: every task's dependencies are in earlier waves (each wave can run at once)."""
    graph = dependency_graph(spec)
    check_acyclic(graph)
    level: dict[str, int] = {}
    for name in topological_order(graph):
        level[name] = 1 + max((level[d] for d in graph[name]), default=-1)
    waves: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for name in graph:  # declaration order inside a wave
        waves[level[name]].append(name)
    return waves


def topological_order(spec: JobSpec | Graph) -> list[str]:
    """One task after another so that each comes after all it depends on (Kahn, declaration order)."""
    graph = dependency_graph(spec)
    check_acyclic(graph)
    dependents: dict[str, list[str]] = {name: [] for name in graph}
    missing = {name: len(set(deps)) for name, deps in graph.items()}
    for name, deps in graph.items():
        for d in dict.fromkeys(deps):
            dependents[d].append(name)
    position = {name: i for i, name in enumerate(graph)}
    ready = [(position[n], n) for n, c in missing.items() if c == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for dep in dependents[name]:
            missing[dep] -= 1
            if missing[dep] == 0:
                heapq.heappush(ready, (position[dep], dep))
    return order


def dependents_of(spec: JobSpec | Graph, name: str) -> list[str]:
    """Every task that (directly or transitively) waits for `name`: what to cancel when it fails."""
    graph = dependency_graph(spec)
    if name not in graph:
        raise AgoraError("not_found", f"no task named {name!r} in this job")
    reverse: dict[str, list[str]] = {n: [] for n in graph}
    for other, deps in graph.items():
        for d in deps:
            reverse[d].append(other)
    out: list[str] = []
    seen = {name}
    frontier = [name]
    while frontier:
        for other in reverse[frontier.pop()]:
            if other not in seen:
                seen.add(other)
                out.append(other)
                frontier.append(other)
    position = {n: i for i, n in enumerate(graph)}
    return sorted(out, key=position.__getitem__)


__all__ = ["Graph", "check_acyclic", "dependency_graph", "dependents_of", "find_cycle", "stages", "topological_order"]
