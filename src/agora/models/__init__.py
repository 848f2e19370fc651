"""Pure data shared across layers (no I/O): capability (`capability.py`), job spec (`job.py`).

Import the names from their modules, e.g. `from agora.models.job import JobSpec`.
"""
