"""Dependency resolution: which steps a step needs, and in which waves the steps can run."""

from imageflow_dagster.flow.errors import BadRecordError
from imageflow_dagster.models.workflow import WorkflowStep


def execution_order(steps: list[WorkflowStep]) -> list[int]:
    """Array indices sorted by `step_order` (array position when absent), as the seed's batch mode does."""
    return sorted(range(len(steps)), key=lambda i: (steps[i].step_order if steps[i].step_order is not None else i, i))


def resolve_dependencies(steps: list[WorkflowStep]) -> dict[int, list[int]]:
    """Map each step index to the indices it depends on.

    A `depends_on` value names a `step_order` first and an array index otherwise (the seed's rule). Without
    `depends_on`, a step depends on every step before it in execution order (the seed API's default).
    """
    order = execution_order(steps)
    by_order = {s.step_order: i for i, s in enumerate(steps) if s.step_order is not None}
    resolved: dict[int, list[int]] = {}
    for position, index in enumerate(order):
        step = steps[index]
        if step.depends_on is None:
            resolved[index] = order[:position]
            continue
        deps = []
        for value in step.depends_on:
            target = by_order.get(value, value if 0 <= value < len(steps) else None)
            if target is None:
                raise BadRecordError(
                    f"Invalid workflow dependencies: step {index + 1} ({step.step_name}) depends on unknown step "
                    f"{value}"
                )
            if target == index:
                raise BadRecordError(
                    f"Invalid workflow dependencies: step {index + 1} ({step.step_name}) depends on itself"
                )
            if target not in deps:
                deps.append(target)
        resolved[index] = deps
    waves(resolved, steps)  # raises on cycles
    return resolved


def waves(dependencies: dict[int, list[int]], steps: list[WorkflowStep]) -> list[list[int]]:
    """Group steps so every step's dependencies are in earlier waves; steps within a wave are independent."""
    remaining = dict(dependencies)
    done: set[int] = set()
    result = []
    while remaining:
        ready = sorted(i for i, deps in remaining.items() if all(d in done for d in deps))
        if not ready:
            names = ", ".join(f"{i + 1} ({steps[i].step_name})" for i in sorted(remaining))
            raise BadRecordError(f"Invalid workflow dependencies: cycle among steps {names}")
        result.append(ready)
        done.update(ready)
        for i in ready:
            del remaining[i]
    return result


def with_dependents(dependencies: dict[int, list[int]], roots: set[int]) -> set[int]:
    """`roots` and every step that depends on one of them, directly or through other steps."""
    chosen = set(roots)
    grew = True
    while grew:
        grew = False
        for step, deps in dependencies.items():
            if step not in chosen and chosen.intersection(deps):
                chosen.add(step)
                grew = True
    return chosen
