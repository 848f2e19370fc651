#!/usr/bin/env bash
# Flow D: a federated training run on the market. Two providers each offer a part of scikit-learn's
# load_digits (the data never leaves them); the owner matches a training spec against their data offers,
# binds one contract per provider, runs the rounds (each provider trains in its sandbox and sends back only
# the update, under a signed receipt) and pays each verified update from escrow. The owner's dashboard
# shows the same at http://API/ui/training (the accuracy plot, the updates per provider, the contracts).
source "$(dirname "$0")/lib.sh"
OWNER=${OWNER:-hub}
PROVIDERS=${PROVIDERS:-node-1 node-2}
PRICE=${PRICE:-2}
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"  # the providers' sandbox user reads the parts

say "0. Split load_digits into one part per provider: $PROVIDERS"
# shellcheck disable=SC2086
"$PYTHON" - "$WORK" $PROVIDERS <<'PY'
import sys

import numpy as np
from sklearn.datasets import load_digits

work, names = sys.argv[1], sys.argv[2:]
x, y = load_digits(return_X_y=True)
for name, idx in zip(names, np.array_split(np.random.default_rng(0).permutation(len(y)), len(names))):
    np.savez(f"{work}/digits-{name}.npz", x=x[idx] / 16.0, y=y[idx])
    print(f"{name}: {len(idx)} rows -> {work}/digits-{name}.npz")
PY

say "1. Each provider offers its part (schema, rows and hash are published; the path never is)"
for p in $PROVIDERS; do
  echo "-- on $p"
  AGORA_NODE=$p run dataset add "$WORK/digits-$p.npz" --tags digits --licence BSD-3-Clause --price-per-update "$PRICE"
done

cat > "$WORK/train.yaml" <<YAML
trainer: softmax
hyper: {learning_rate: 0.5, local_epochs: 1, batch_size: 32, seed: 0}
strategy: fedavg
schema: {features: [$(seq -s, -f 'x%g' 0 63 | sed 's/,/, /g')], label: y, classes: ["0","1","2","3","4","5","6","7","8","9"]}
data_tags: [digits]
min_providers: 2
max_providers: 2
rounds: $ROUNDS
round_deadline_s: 60
min_fit: 2
max_price_per_update: 5
max_update_norm: 10000
YAML

export AGORA_NODE=$OWNER
say "2. $OWNER owns the model; its dashboard: $(member "$OWNER" api)/ui/training"
say "3. Match the spec against the data offers and run $ROUNDS rounds (waits for the end)"
# --wait with --json streams JSON lines (started, round, state, end): each round is told as it finishes
echo "\$ agora train start $WORK/train.yaml --budget 100 --wait 180 --json"
$AGORA train start "$WORK/train.yaml" --budget 100 --wait 180 --json | "$PYTHON" -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e["event"] == "round":
        acc = e["metrics"].get("eval_accuracy", float("nan"))
        text = "   round {round}/{rounds_planned}: {accepted} update(s) accepted, {late} late, {rejected} rejected"
        print(text.format(**e) + f", accuracy {acc:.3f}", flush=True)
    elif e["event"] == "end":
        open(sys.argv[1], "w").write(json.dumps(e["run"]))
' "$WORK/run.json"
STARTED=$(cat "$WORK/run.json")
RUN=$(echo "$STARTED" | json_field run_id)
STATE=$(echo "$STARTED" | json_field state)
[ "$STATE" = completed ] || { echo "the run ended $STATE: $STARTED" >&2; exit 1; }
say "4. The run: rounds (accepted, late, rejected updates, loss and accuracy) and the updates per provider"
run train status "$RUN"
CONTRACT=$(echo "$STARTED" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["providers"][0]["contract_id"])')
say "5. One provider's contract: bound to each round, each update released from escrow"
run contract show "$CONTRACT"
say "6. Nothing is left pending"
run train status
