#!/usr/bin/env bash
# Flow C: the marketplace loop. The buyer states an intent (a wasm job, a budget), previews the match (the
# policy check, nothing changes), matches (a contract), the job runs and delivers, then the contract's
# timeline and the marketplace's numbers. The dashboard shows the same at http://API/ui/contracts.
source "$(dirname "$0")/lib.sh"
BUYER=${BUYER:-node-2}
export AGORA_NODE=$BUYER
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/intent.yaml" <<YAML
job:
  name: market-flow
  tasks:
    - name: hello
      module: $REPO_DIR/examples/wasm/hello.wat
      resources: {cpu: 0.5, memory: 64Mi, disk: 16Mi}
      timeout: 30s
budget: 100000
YAML

say "$BUYER buys in this flow: it stops selling, so the market places its job elsewhere"
buy_only "$BUYER"
say "The buyer is $BUYER; its dashboard: $(member "$BUYER" api)/ui/"
say "1. State an intent and open it"
INTENT=$($AGORA intent create "$WORK/intent.yaml" --open --json | json_field intent_id)
run intent show "$INTENT"
say "2. Preview: who would be asked, at what quote (nothing is stored, nobody is asked)"
run match "$INTENT" --preview
say "3. Match: bids, an award, a contract"
MATCHED=$($AGORA match "$INTENT" --json) || { echo "not matched: $MATCHED"; exit 1; }
JOB=$(echo "$MATCHED" | json_field job_id)
CONTRACT=$(echo "$MATCHED" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["contracts"][0]["contract_id"])')
echo "job $JOB, contract $CONTRACT"
say "4. The job runs and delivers"
run job logs "$JOB" --follow
say "5. The contract's timeline, in order"
run contract show "$CONTRACT"
say "6. The marketplace as $BUYER sees it"
run market summary
