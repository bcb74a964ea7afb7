"""The stage dependency graph: which stage needs which, refusal of cycles and forward references,
the stages a target needs, a build order and the groups of stages that can build side by side.

A stage needs another when it is built on it (``FROM name``), copies from it (``COPY --from=name``
or ``--from=N``) or mounts it (``RUN --mount=from=name``). As in Docker, a stage can only use stages
defined before it; a stage's own name in its FROM line is an image (``FROM nginx AS nginx``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from isobox.builder.source import DockerfileError, Origin

__all__ = ["Dependency", "build_order", "check", "needed_by", "parallel_groups"]


@dataclass(frozen=True)
class Dependency:
    stage: int  # the stage that needs another
    needs: int  # the stage it needs
    origin: Origin  # the instruction that says so


def check(dependencies: Sequence[Dependency], labels: Sequence[str]) -> None:
    """Refuses cycles (named stage by stage) and then references to a stage defined later."""
    _refuse_cycles(dependencies, labels)
    for dependency in dependencies:
        if dependency.needs >= dependency.stage:
            later = labels[dependency.needs]
            raise DockerfileError.at(dependency.origin,
                                     f"{later} is defined after {labels[dependency.stage]}: a stage can only use "
                                     "stages defined before it (move it up, or rename it if an image was meant)",
                                     op="plan build")


def _refuse_cycles(dependencies: Sequence[Dependency], labels: Sequence[str]) -> None:
    edges: dict[int, list[Dependency]] = {}
    for edge in dependencies:
        edges.setdefault(edge.stage, []).append(edge)
    done: set[int] = set()
    for start in range(len(labels)):
        if start in done:
            continue
        path = [start]  # the stages from ``start`` to the one being explored (iterative depth-first search)
        stack: list[Iterator[Dependency]] = [iter(edges.get(start, ()))]
        while stack:
            dependency: Dependency | None = next(stack[-1], None)
            if dependency is None:
                stack.pop()
                done.add(path.pop())
                continue
            if dependency.needs in path:
                cycle = [*path[path.index(dependency.needs):], dependency.needs]
                names = " → ".join(labels[stage] for stage in cycle)
                raise DockerfileError.at(dependency.origin, f"stages depend on each other in a cycle: {names}",
                                         op="plan build")
            if dependency.needs not in done:
                path.append(dependency.needs)
                stack.append(iter(edges.get(dependency.needs, ())))


def needed_by(target: int, dependencies: Iterable[Dependency]) -> set[int]:
    """The target and every stage it needs, directly or not."""
    edges: dict[int, set[int]] = {}
    for dependency in dependencies:
        edges.setdefault(dependency.stage, set()).add(dependency.needs)
    needed = {target}
    pending = [target]
    while pending:
        for other in edges.get(pending.pop(), ()):
            if other not in needed:
                needed.add(other)
                pending.append(other)
    return needed


def _needs_within(stages: set[int], dependencies: Iterable[Dependency]) -> dict[int, set[int]]:
    needs: dict[int, set[int]] = {stage: set() for stage in stages}
    for dependency in dependencies:
        if dependency.stage in stages and dependency.needs in stages:
            needs[dependency.stage].add(dependency.needs)
    return needs


def build_order(stages: set[int], dependencies: Iterable[Dependency]) -> list[int]:
    """A topological order of ``stages`` (Kahn's algorithm, lowest index first among the ready ones)."""
    needs = _needs_within(stages, dependencies)
    order: list[int] = []
    ready = sorted(stage for stage, wanted in needs.items() if not wanted)
    while ready:
        stage = ready.pop(0)
        order.append(stage)
        for other, wanted in needs.items():
            if stage in wanted:
                wanted.discard(stage)
                if not wanted and other not in order and other not in ready:
                    ready.append(other)
        ready.sort()
    if len(order) != len(stages):
        raise AssertionError("build_order called on a graph with a cycle; check() refuses those first")
    return order


def parallel_groups(stages: set[int], dependencies: Iterable[Dependency]) -> tuple[tuple[int, ...], ...]:
    """Stages by depth: a group needs only stages of earlier groups, so its members can build together."""
    needs = _needs_within(stages, dependencies)
    depth: dict[int, int] = {}
    for stage in build_order(stages, dependencies):
        depth[stage] = 1 + max((depth[other] for other in needs[stage]), default=-1)
    groups: dict[int, list[int]] = {}
    for stage, level in depth.items():
        groups.setdefault(level, []).append(stage)
    return tuple(tuple(sorted(groups[level])) for level in sorted(groups))
