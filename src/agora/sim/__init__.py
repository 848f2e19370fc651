"""The simulator: the real matching, bidding, reservation, ledger and trust code at network scale.

- `scenario.py`: the YAML scenario file, validated like a job spec (`scenario_invalid` with field paths);
  distributions, arrival processes, churn; `with_param` for sweeps.
- `world.py`: `World`, the discrete-event loop over a `ManualClock` (no sleeps): providers, requesters,
  jobs and churn; which parts are the real code (`REAL_CODE`) and which a documented faster path
  (`FASTER_PATH`).
- `columns.py`: per-provider candidate-table rows; a placement's `CandidateTable` sliced from them.
- `inference.py`, `fl.py`: the inference-routing and federated-learning markets on their real code (the
  scenario's `inference:` and `fl:` sections).
- `index.py`: `CandidateIndex`, capacity buckets and a bounded candidate sample (matching never scans
  every provider).
- `invariants.py`: the checks after every step; the first violation ends the run with its event trail.
- `metrics.py`: every metric with its definition (`DEFINITIONS`, `SERIES`).
- `run.py`: `simulate(scenario)` -> the report document.
- `report.py`: `report.json` (canonical, byte-for-byte reproducible), `report.md` with PNG plots, `compare`.
- `sweep.py`: variants of a scenario over a local process pool or a Dask cluster.
"""

from agora.sim.run import simulate, simulate_async
from agora.sim.scenario import Scenario, load, parse, with_param
from agora.sim.world import FASTER_PATH, REAL_CODE, World

__all__ = ["FASTER_PATH", "REAL_CODE", "Scenario", "World", "load", "parse", "simulate", "simulate_async", "with_param"]
