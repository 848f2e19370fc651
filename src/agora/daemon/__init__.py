"""The node process: `python -m agora.daemon` runs one Node and its local API until SIGTERM/SIGINT.

`agora node up`, `agora hub up` and the devnet start this module as a process (the CLI never imports
the node's internals). It binds the API's port first (a port in use fails before the node joins, so peers
never see a join and a leave), then starts the node. It prints one JSON line `{"event": "ready", ...}` on
stdout once the node is joined and its API serves, writes `run.json` in the node's home for the CLI to find it, and on
shutdown announces leave, stops everything it started and removes `run.json`.

- `main.py`: flags generated from the settings schema (`agora.node.settings`), `run(config)`; `main` is the
  one place that reads the process environment (`AGORA_*`).
"""

from agora.daemon.main import build_config, build_parser, main, parse_args, run

__all__ = ["build_config", "build_parser", "main", "parse_args", "run"]
