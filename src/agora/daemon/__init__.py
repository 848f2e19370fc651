"""The node process: `python -m agora.daemon` runs one Node and its local API until SIGTERM/SIGINT.

`agora node up`, `agora hub up` and the devnet start this module as a process (the CLI never imports
the node's internals). It prints one JSON line `{"event": "ready", ...}` on stdout once the node is
joined and its API serves, writes `run.json` in the node's home for the CLI to find it, and on
shutdown announces leave, stops everything it started and removes `run.json`.

- `main.py`: argument parsing, `run(config)`.
"""

from agora.daemon.main import build_config, build_parser, main, parse_args, run

__all__ = ["build_config", "build_parser", "main", "parse_args", "run"]
