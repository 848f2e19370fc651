"""The `agora` command line (Typer). It talks to nodes only through `agora.client` (the local API) and
starts node processes with `python -m agora.daemon`; it never imports a node's internals.

- `main.py`: the app and its command tree.
- `node.py`: init, hub up, node up, status, peers, ping.
- `devnet.py`: devnet up / status / down.
- `output.py`: `--json` output, tables, error printing with hints.
"""
