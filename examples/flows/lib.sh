# Shared by the flow scripts: narration, and the devnet's members read from its devnet.json (never
# hard-coded: a rebuilt devnet has new DIDs and ports). Source it; run from the devnet's parent directory
# (or set AGORA_DEVNET_DIR). AGORA may name the CLI (default: agora).
set -euo pipefail
AGORA=${AGORA:-agora}
DEVNET_DIR=${AGORA_DEVNET_DIR:-.agora-devnet}
FLOWS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$FLOWS_DIR/../.." && pwd)
PYTHON=${PYTHON:-python3}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ agora %s\n' "$*"; $AGORA "$@"; }

# member NAME FIELD: a field (did, api, name) of the devnet member NAME (hub, node-1, ...)
member() {
  "$PYTHON" - "$DEVNET_DIR/devnet.json" "$1" "$2" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for m in [doc["hub"], *doc["nodes"]]:
    if m.get("name") == sys.argv[2]:
        print(m[sys.argv[3]])
        break
else:
    sys.exit(f"no devnet member {sys.argv[2]!r} in {sys.argv[1]}")
PY
}

# json_field FIELD: read one top-level field of the JSON document on stdin
json_field() { "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

[ -f "$DEVNET_DIR/devnet.json" ] || { echo "no devnet here ($DEVNET_DIR/devnet.json): run 'agora devnet up' first" >&2; exit 2; }

# buy_only NODE: NODE stops selling (its active offers withdrawn) so that the market places its jobs on the
# other providers; waits, bounded, until its ad has left the market index it reads.
buy_only() {
  local did ids
  did=$(member "$1" did)
  ids=$(AGORA_NODE=$1 $AGORA offer list --state active --json | "$PYTHON" -c 'import json,sys; print(" ".join(o["offer_id"] for o in json.load(sys.stdin)))')
  for id in $ids; do AGORA_NODE=$1 $AGORA offer withdraw "$id" >/dev/null; done
  for _ in $(seq 1 50); do
    AGORA_NODE=$1 $AGORA market --json | "$PYTHON" -c 'import json,sys; sys.exit(any(p["provider"] == sys.argv[1] for p in json.load(sys.stdin)["providers"]))' "$did" && return 0
    sleep 0.2
  done
  echo "$1's ad is still in the market index" >&2
  return 1
}
