#!/usr/bin/env bash
# Flow A: wasm compute bought on the market. node-2 runs examples/jobs/hello-wasm.yaml without naming a
# provider: it reads the hub's market index, asks the best providers for bids, awards one, runs, verifies.
source "$(dirname "$0")/lib.sh"
BUYER=${BUYER:-node-2}
export AGORA_NODE=$BUYER

say "$BUYER buys in this flow: it stops selling, so the market places its job elsewhere"
buy_only "$BUYER"
say "The buyer is $BUYER ($(member "$BUYER" did)); the market it sees:"
run market
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# the example job, its module path made absolute: the flow runs from the devnet's directory
sed "s|module: examples/|module: $REPO_DIR/examples/|" "$REPO_DIR/examples/jobs/hello-wasm.yaml" > "$WORK/hello-wasm.yaml"
say "Run examples/jobs/hello-wasm.yaml through the market (no --node: the market places it)"
JOB=$($AGORA job run "$WORK/hello-wasm.yaml" --detach)
echo "job $JOB submitted"
run job logs "$JOB" --follow
say "Why it ran where it ran (candidates, bids, the award):"
run job why "$JOB"
say "Its state and outputs:"
run job status "$JOB"
