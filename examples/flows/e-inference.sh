#!/usr/bin/env bash
# Flow E: inference bought with the `openai` client. A provider serves a model at a price per 1,000 tokens
# (its capacity ad carries the offer); the requester's node gets signed quotes, and an unchanged OpenAI
# client pointed at the requester's /v1 buys answers: each one routed, checked against a signed metering
# record and paid. The requester's dashboard shows the spend at http://API/ui/inference.
source "$(dirname "$0")/lib.sh"
PROVIDER=${PROVIDER:-node-1}
REQUESTER=${REQUESTER:-node-2}
# the builtin model (SmolLM2-135M, offline on CPU) where it is installed, else the deterministic mock
if [ -z "${MODEL:-}" ]; then
  if "$PYTHON" -c 'import sys; from agora.inference.runner_builtin import CHAT_MODEL, available; sys.exit(available()[CHAT_MODEL] is not None)'; then
    MODEL=smollm2-135m RUNNER=builtin
  else
    MODEL=mock-chat RUNNER=mock
  fi
fi
RUNNER=${RUNNER:-mock}

say "1. $PROVIDER serves $MODEL ($RUNNER runner) at 10 in / 20 out per 1k tokens"
AGORA_NODE=$PROVIDER run model add "$MODEL" --runner "$RUNNER" --price-in 10 --price-out 20

export AGORA_NODE=$REQUESTER
say "2. $REQUESTER waits for the offer in the market index it reads"
for _ in $(seq 1 100); do
  $AGORA model list --json | "$PYTHON" -c 'import json,sys; sys.exit(not any(m["model"] == sys.argv[1] for m in json.load(sys.stdin)["models"]))' "$MODEL" && break
  sleep 0.2
done
run model list
say "3. Signed quotes, in routing order (nothing is paid yet)"
run quote "$MODEL" --in 20 --out 16

API=$(member "$REQUESTER" api)
say "4. The openai client, unchanged, against $API/v1 (the dashboard: $API/ui/inference)"
"$PYTHON" - "$API" "$MODEL" <<'PY'
import sys

import openai

api, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=f"{api}/v1", api_key="not-needed-on-loopback")
question = "What is the capital of France?"
print(f"> {question}")
answer = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": question}],
    max_tokens=16,
    extra_body={"provider": {"strategy": "cheapest", "max_price": 50}},
)
print(answer.choices[0].message.content.strip())
agora = (answer.model_extra or {})["agora"]
m = agora["metering"]
print(
    f"-- served by {agora['provider'][:24]}…: {m['tokens_in']} in / {m['tokens_out']} out tokens, "
    f"ttft {m['ttft_ms']} ms, paid {agora['paid']} (metering record {m['cid'][:16]}… verified)"
)
print("> the same, streamed:")
stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": question}],
    max_tokens=16,
    stream=True,
    stream_options={"include_usage": True},
)
usage = None
for chunk in stream:
    for choice in chunk.choices:
        print(choice.delta.content or "", end="", flush=True)
    usage = chunk.usage or usage
print()
assert usage is not None, "the stream ended without usage"
print(f"-- streamed: {usage.prompt_tokens} in / {usage.completion_tokens} out tokens")
PY
say "5. What $REQUESTER spent and $PROVIDER earned (the inference section of /metrics_summary)"
for who in "$REQUESTER" "$PROVIDER"; do
  echo "-- $who"
  AGORA_NODE=$who $AGORA market summary --json | "$PYTHON" -c 'import json,sys; m=json.load(sys.stdin); print("\n".join(f"{k}: {v}" for k, v in m.items() if k.startswith("inference_")))'
done
