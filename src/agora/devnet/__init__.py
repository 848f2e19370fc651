"""The local devnet: a hub and N nodes as processes on this machine, and the demo that uses it.

- `launcher.py`: `up(n, dir)`, `add_node(dir)`, `status(dir)`, `down(dir)`; writes `devnet.json`.
- `demo.py`: what `make demo` shows.
"""

from agora.devnet.launcher import DEFAULT_DIR, STATE_FILE, add_node, check_not_running, down, load_state, status, up

__all__ = ["DEFAULT_DIR", "STATE_FILE", "add_node", "check_not_running", "down", "load_state", "status", "up"]
