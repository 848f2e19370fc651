from __future__ import annotations

from typing import Any

import pytest


def tiny(**over: Any) -> dict[str, Any]:
    """A scenario small enough to run in about a second, with churn and dishonest providers."""
    doc: dict[str, Any] = {
        "name": "tiny",
        "seed": 7,
        "duration": "3h",
        "sample_every": "20m",
        "providers": {"count": 25, "dishonest": 0.2, "price": {"uniform": [1, 6]}, "reliability": 0.97},
        "requesters": {"count": 5, "arrivals": {"process": "poisson", "rate_per_hour": 120}},
        "jobs": {"redundancy": {"choice": [1, 2]}, "deadline": "1h", "duration": {"exponential": 600, "min": 10}},
        "churn": {"join_per_hour": 2, "leave_per_hour": 2, "crash_per_hour": 3, "partition_per_hour": 2},
    }
    for k, v in over.items():
        doc[k] = v
    return doc


@pytest.fixture
def tiny_doc() -> dict[str, Any]:
    return tiny()
