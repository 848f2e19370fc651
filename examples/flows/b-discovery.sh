#!/usr/bin/env bash
# Flow B: discovery made visible. Each node announces itself through the hub; the others add it to their
# peer table (joined), see it go quiet (lost), and forget it after the expiry. This flow shows the table
# and the discovery events each node records.
source "$(dirname "$0")/lib.sh"
WATCHER=${WATCHER:-node-1}
export AGORA_NODE=$WATCHER

say "$WATCHER ($(member "$WATCHER" did)) and the peers it has heard from:"
run peers
say "Ping the hub through the network (signed invocations, round trips in ms):"
run ping hub --count 3
say "What $WATCHER recorded when each peer joined (GET /events?kind=peer.joined on its API):"
"$PYTHON" - "$(member "$WATCHER" api)" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(f"{sys.argv[1]}/events?kind=peer.joined") as resp:
    for e in json.load(resp)["events"]:
        print(f"  #{e['seq']} {e['kind']} {e['subject']}")
PY
say "To watch a node get lost and expire: 'agora devnet down' one node's process, then run 'agora peers' again."
