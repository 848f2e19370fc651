"""The one error catalog of agora.

Every failure that crosses a boundary (the wire, the API, the CLI) is an `AgoraError` whose `code` is
a key of `CATALOG`. Codes are stable: clients and tests match on them, so a code is never renamed;
a new situation gets a new code. Each entry holds the HTTP status the API maps it to, whether a retry
can help, and a default hint that tells a person what to do about it.

Retryability has one source, this catalog (`is_retryable(code)`). A code is retryable when the same
request may succeed later without changes; a bug (`internal`, `handler_failed`) is not, since retrying it
only repeats the bug. A particular error may be *less* retryable than its code (the raiser knows this
case cannot get better: a task bigger than the whole node), never more: `AgoraError(..., retryable=True)`
on a non-retryable code stays non-retryable. A remote peer's `retryable` in a receipt is advice, not
authority: `from_dict` keeps it only where the catalog agrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorKind:
    http_status: int
    retryable: bool
    hint: str


def _k(status: int, hint: str, retryable: bool = False) -> ErrorKind:
    return ErrorKind(status, retryable, hint)


CATALOG: dict[str, ErrorKind] = {
    # generic
    "internal": _k(500, "This is a bug in agora; the node's log has the details."),
    "invalid_argument": _k(400, "Check the request against the API documentation."),
    "not_found": _k(404, "Check the identifier; list what exists first."),
    "already_exists": _k(409, "Pick another name or remove the existing one first."),
    "timeout": _k(504, "The peer did not answer in time; check that it is up and retry.", True),
    "unavailable": _k(503, "The service is not reachable right now; retry later.", True),
    "cancelled": _k(499, "The operation was cancelled before it finished."),
    "forbidden_remote_caller": _k(403, "The local API only answers callers on this machine."),
    "api_token_invalid": _k(
        401,
        "This node's TCP API asks for its token: run the CLI as the node's user (it reads HOME/api.token), "
        "or send `Authorization: Bearer TOKEN` with the token from that file (curl -H).",
    ),
    "config_invalid": _k(400, "Fix the configuration value named in the message."),
    # codec / wire
    "cbor_malformed": _k(400, "The message is not valid DAG-CBOR; the sender is broken or hostile."),
    "cbor_non_canonical": _k(400, "DAG-CBOR must be canonical (shortest ints, sorted keys, 64-bit floats)."),
    "cid_invalid": _k(400, "A content identifier could not be parsed."),
    "message_too_large": _k(413, "Send large payloads through storage and pass a reference instead."),
    "message_malformed": _k(400, "The envelope does not have the expected shape."),
    "unknown_message_type": _k(400, "The peer speaks a message type this node does not know."),
    # identity
    "did_invalid": _k(400, "A DID must look like did:key:z6Mk... (Ed25519, base58btc)."),
    "did_unsupported": _k(400, "Only did:key with Ed25519 keys is supported."),
    "keystore_missing": _k(404, "Run `agora init` to create a keystore first."),
    "keystore_exists": _k(409, "A keystore already exists; pass --force to replace it (the old key is lost)."),
    "keystore_invalid": _k(400, "The keystore file is damaged or not an agora keystore."),
    "keystore_passphrase": _k(401, "Wrong or missing passphrase: set AGORA_PASSPHRASE for the node process."),
    "keystore_permissions": _k(400, "The keystore must be readable only by its owner: chmod 600 it."),
    # ucan
    "ucan_malformed": _k(400, "The token is not a UCAN 1.0 envelope."),
    "ucan_signature_invalid": _k(401, "The signature does not verify against the issuer's key."),
    "ucan_expired": _k(401, "The token has expired; ask for a fresh one.", True),
    "ucan_not_yet_valid": _k(401, "The token's nbf (or iat) is in the future; check the clocks of both machines."),
    "ucan_replayed": _k(409, "This invocation was already seen; send a new one with a fresh nonce."),
    "ucan_audience_mismatch": _k(403, "The token is addressed to another principal."),
    "ucan_subject_mismatch": _k(403, "Every token in the chain must be about the same subject."),
    "ucan_proof_missing": _k(403, "A proof cited by the invocation was not supplied."),
    "ucan_unauthorized": _k(403, "No delegation covers this command; ask the node's operator for one."),
    "ucan_command_not_delegated": _k(403, "The command is outside what the delegation allows."),
    "ucan_policy_violation": _k(403, "The arguments break a policy of a delegation in the chain."),
    "ucan_policy_invalid": _k(400, "The policy is not valid UCAN policy language."),
    "ucan_invalid_claim": _k(403, "The chain does not prove authority over the subject."),
    "ucan_lifetime_invalid": _k(
        400,
        "Invocations need an exp at most 600 s ahead, 120 s for public behaviors (agora sends now+300 s, now+60 s "
        "without proofs), so that replays are caught.",
    ),
    "ucan_replay_cache_full": _k(503, "Too many live invocations to remember; retry in a few seconds.", True),
    "rate_limited": _k(429, "This caller sent too many requests to the node; slow down and retry shortly.", True),
    # actor / rpc
    "unknown_command": _k(404, "The target does not offer this command; check `agora node info`."),
    "handler_failed": _k(500, "The behavior failed on the remote node; its log has the details."),
    "peer_unreachable": _k(503, "No route to the peer; check that it is up and joined to the same hub.", True),
    "receipt_invalid": _k(502, "The reply receipt did not verify; the peer is broken or hostile."),
    # transport / hub
    "hub_unreachable": _k(
        503, "Check the hub URL and that `agora hub up` is running; firewalls must allow the port.", True
    ),
    "hub_auth_failed": _k(401, "This node's DID is not on the hub's allowlist; ask the hub operator."),
    "hub_start_failed": _k(500, "The nats-server binary could not start; see the hub log."),
    "topic_invalid": _k(400, "Topics are dotted names of letters, digits, '-' and '_' (e.g. agora.announce)."),
    "transport_closed": _k(503, "The transport is not started or was closed; start a new one."),
    "hub_permission_denied": _k(
        403, "An allowlisted hub lets a node use only its own inbox and replies and the hub's public topics."
    ),
    # store
    "store_conflict": _k(409, "The document changed meanwhile; re-read and retry.", True),
    "store_query_invalid": _k(400, "Query fields must be simple names and values JSON scalars."),
    "store_corrupt": _k(500, "The database file is damaged: restore it from a backup or move it aside."),
    "store_schema_too_new": _k(500, "A newer agora wrote this database; upgrade agora or use another data dir."),
    "store_closed": _k(503, "The store was closed; this is a shutdown-ordering bug or a late call."),
    # devnet / node
    "node_not_running": _k(503, "Start the node with `agora node up` or `agora devnet up`.", True),
    "home_in_use": _k(409, "Another agora node runs with this home; stop it, or give this one its own --home."),
    "devnet_not_running": _k(404, "Start a devnet with `agora devnet up` first."),
    "devnet_already_running": _k(409, "A devnet is already up here; `agora devnet down` stops it."),
    # resources / capability
    "insufficient_capacity": _k(409, "The node does not have the free resources; see the reasons.", True),
    "capability_invalid": _k(400, "Resource amounts must be non-negative with known units."),
    "benchmark_failed": _k(500, "A benchmark step failed (full disk or unwritable node home?); see the message.", True),
    # jobs
    "job_spec_invalid": _k(400, "Fix the fields listed in the details."),
    "workflow_cycle": _k(400, "Remove a depends_on edge so the tasks form a DAG."),
    "job_not_found": _k(404, "List jobs with `agora job status`."),
    "convert_unknown_engine": _k(400, "Supported: --from kubernetes, nomad or bacalhau."),
    "convert_unsupported_kind": _k(400, "Only Kubernetes Job and Pod objects can be converted."),
    "convert_parse_failed": _k(400, "The file could not be parsed in the given format."),
    "constraints_unmet": _k(
        409, "The chosen node does not meet the job's constraints (see the reasons): pick another node or relax them."
    ),
    # executors
    "executor_unavailable": _k(409, "That engine is not available on the node; see its reason."),
    "network_forbidden": _k(
        403,
        "This node does not give process tasks the host's network (a task there could reach the machine's "
        "local services); its operator can allow it with --allow-task-network, or use the docker engine.",
    ),
    "executor_failed": _k(500, "The sandbox could not start the task; see the message."),
    "task_timeout": _k(408, "The task ran past its timeout; raise `timeout` or make it faster."),
    "task_oom": _k(507, "The task went over its memory limit; raise `resources.memory`."),
    "task_disk_limit": _k(507, "The task wrote more than its disk limit; raise `resources.disk`."),
    "task_output_limit": _k(
        413, "The task wrote more output files than a receipt may list; pack them into one archive (tar, zip)."
    ),
    "task_failed": _k(422, "The task exited non-zero; read its logs."),
    "task_cancelled": _k(499, "The task was cancelled."),
    "module_invalid": _k(400, "The wasm module could not be compiled or does not exist."),
    "module_trap": _k(422, "The wasm module trapped; read its stderr."),
    "image_not_found": _k(404, "The image is not on the node and pulling is not allowed (allow_pull)."),
    # storage
    "input_missing": _k(404, "An input could not be found at its source."),
    "storage_unreachable": _k(503, "The storage endpoint did not answer; check the URL.", True),
    "storage_auth_failed": _k(401, "Check the storage credentials."),
    "storage_integrity": _k(422, "The content's hash does not match the expected one."),
    "storage_quota_exceeded": _k(
        507,
        "This requester's share of the provider's store is full; results are removed after they are fetched "
        "or expire, so fetch them, wait, or ask the operator for a larger quota.",
    ),
    "input_too_large": _k(413, "The input is over this node's size limit for its source; use S3 or raise the limit."),
    "input_forbidden": _k(
        403,
        "The provider does not fetch from private or local addresses (loopback, private networks, link-local, "
        "cloud metadata); publish the input on a public address, or its operator can allow them with "
        "--allow-private-inputs.",
    ),
    "storage_forbidden": _k(
        403, "A provider lets jobs use its S3 credentials for its configured bucket only; name that bucket."
    ),
    # compute
    "alloc_not_found": _k(404, "No such allocation on this node."),
    "alloc_invalid_state": _k(409, "The allocation is not in a state that allows this."),
    "alloc_interrupted": _k(503, "The provider node stopped or restarted while the task ran; run it again.", True),
    "delegation_limit": _k(507, "This node holds too many delegations; let old ones expire or remove some."),
    # market
    "offer_invalid": _k(400, "Fix the offer field named in details.field; details.errors lists every problem."),
    "intent_invalid": _k(400, "Fix the intent field named in details.field; details.errors lists every problem."),
    "intent_kind_unsupported": _k(400, "Kinds `job` and `training` are accepted; `inference` comes later."),
    "intent_transition_invalid": _k(409, "The intent cannot make this move; the message lists the moves allowed now."),
    "intent_not_found": _k(404, "List intents with `agora intent list`."),
    # offers (uipolish)
    "offer_not_found": _k(404, "List this node's offers with `agora offer list`."),
    "offer_limit_reached": _k(
        409, "This node sells under as many offers as it may; withdraw one first: `agora offer withdraw ID`."
    ),
    "contract_not_found": _k(404, "List contracts with `agora contract list`."),
    "contract_invalid_state": _k(409, "The contract is not in a state that allows this; `agora contract show ID`."),
    "ad_invalid": _k(400, "The capacity ad is malformed or its signature does not verify; it is ignored."),
    "ad_replayed": _k(409, "An ad older than (or conflicting with) one already seen from this provider; ignored."),
    "market_message_invalid": _k(400, "A bid request, bid, decline, award, commit or release is malformed or forged."),
    "bid_expired": _k(409, "The bid or award is past its valid-until; ask for a new bid.", True),
    "bid_over_max_price": _k(409, "A bid may never exceed the job's max_price; the provider is broken or hostile."),
    "reservation_not_found": _k(404, "No reservation for this award on the provider (expired or released)."),
    "reservation_invalid_state": _k(409, "The reservation is not in a state that allows this (already started?)."),
    "deadline_exceeded": _k(
        408, "No provider could take the job before its deadline; `agora job why ID` says what blocked it."
    ),
    # ledger
    "insufficient_funds": _k(402, "The account does not hold enough; fund it (`agora ledger mint` by the operator)."),
    "ledger_unauthorized": _k(403, "Only the hub operator (or the account's owner, for its own money) may do this."),
    "ledger_conflict": _k(409, "Another writer appended to the journal first; reload and retry.", True),
    "ledger_entry_invalid": _k(400, "A ledger entry must balance (sum 0) and leave no forbidden negative balance."),
    "ledger_corrupt": _k(500, "The journal does not verify: `agora ledger verify` names the first bad entry."),
    "ledger_unavailable": _k(
        503, "No hub that runs the ledger answered; check the hub link, or name the hub: --ledger-hubs DID.", True
    ),
    "idempotency_conflict": _k(
        409, "This idempotency key was already used for another operation; use a fresh key for a new one."
    ),
    "escrow_not_found": _k(404, "No escrow was locked for this contract."),
    "escrow_already_locked": _k(409, "This contract's escrow is already locked; a contract has one escrow."),
    "escrow_invalid_state": _k(409, "The escrow is not in a state that allows this (only a disputed one resolves)."),
    "contract_already_released": _k(409, "The escrow was already released; nothing is paid twice."),
    "contract_already_settled": _k(409, "The escrow was already settled (released, refunded or resolved)."),
    "contract_disputed": _k(409, "The escrow is frozen by a dispute until the hub operator resolves it."),
    "results_disagree": _k(
        422,
        "Too few replicas of the unit signed the same output hashes (verification.agree); `agora job why ID` "
        "lists each provider's outputs and receipt. Run it again, or raise verification.replicas.",
    ),
    # staking and slashing
    "slash_unproven": _k(
        422,
        "A slash claim must carry the accused's signed usage receipt and at least 2 agreeing ones of the same "
        'unit from other providers, with different outputs; docs/ledger.md "Slashing" lists the checks.',
    ),
    # federated learning
    "dataset_invalid": _k(400, "Fix the data-set field named in details.field; details.errors lists every problem."),
    "dataset_not_found": _k(404, "The data set's path does not exist on this machine (or `agora dataset list`)."),
    "dataset_schema_mismatch": _k(
        400, "The declared schema does not match the file: details names the columns (or leave --features out)."
    ),
    "dataset_format_unsupported": _k(400, "A data set is a .csv file, an .npz file (x, y) or a folder of those."),
    "training_spec_invalid": _k(400, "Fix the training field named in details.field; details.errors lists every one."),
    "training_update_rejected": _k(
        422, "The update failed a check (shape, finite values, norm bound); it is not paid and is trust evidence."
    ),
    "training_too_few_updates": _k(
        503, "Fewer than min_fit updates arrived by the round's deadline; retry the round or add providers.", True
    ),
    "training_run_not_found": _k(404, "List runs with `agora train status`."),
    "custom_code_refused": _k(403, "The data offer does not accept custom training code; use a built-in trainer."),
    "training_escrow_missing": _k(
        402, "The provider trains a priced round only once the owner's escrow for it is locked at the hub; lock it."
    ),
    # sim
    "scenario_invalid": _k(400, "Fix the scenario fields named in the message (docs/simulator.md lists them)."),
    "sim_file_unreadable": _k(404, "Check the path: the scenario YAML or report.json must exist and be readable."),
    "sim_report_invalid": _k(400, "Pass a report.json that `agora sim run --out DIR` wrote (DIR/report.json)."),
    "sim_invariant_violated": _k(
        500,
        "The simulated market broke one of its invariants: the message names it and details.trail holds the "
        "events that led there; this is a bug in the code the simulator runs (or in the simulator).",
    ),
    # inference
    "model_not_found": _k(404, "No provider offers this model now; `agora model list` shows the network's models."),
    "model_offer_invalid": _k(400, "Fix the model offer field named in details.field."),
    "runner_unavailable": _k(503, "The model runner is not installed or not answering; see the message.", True),
    "runner_failed": _k(502, "The provider's model runner returned an error or garbage; try another provider.", True),
    "inference_rate_limited": _k(429, "The provider is at its max concurrency; retry or let routing fall back.", True),
    "quote_invalid": _k(400, "The quote is malformed, forged, or for another requester or model."),
    "quote_expired": _k(409, "The quote is past its valid-until; ask for a new quote.", True),
    "over_budget": _k(402, "The request's price exceeds max_price; raise max_price or ask for fewer tokens."),
    "context_exceeded": _k(400, "The prompt is larger than the model's context; shorten it (nothing was paid)."),
    "metering_invalid": _k(
        422, "The provider's metering record does not verify (signature, hashes, tokens, quote or price); unpaid."
    ),
    "no_provider": _k(503, "Every eligible provider failed or was excluded; see details.attempts.", True),
}


class AgoraError(Exception):
    """An error with a stable code from `CATALOG`, a message, a hint and whether to retry."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        hint: str | None = None,
        retryable: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        kind = CATALOG.get(code)
        if kind is None:  # an unknown code is a programming error: fail loudly in tests
            raise ValueError(f"error code {code!r} is not in the catalog")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.hint = hint if hint is not None else kind.hint
        # the catalog decides; a caller may only narrow it (this case cannot get better), never widen it
        self.retryable = kind.retryable and retryable is not False
        self.details = details or {}

    @property
    def http_status(self) -> int:
        return CATALOG[self.code].http_status

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "retryable": self.retryable,
        }
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgoraError:
        """Rebuild an error received as data; an unknown code becomes `internal` (never lost).

        The sender's `retryable` is advice: a `false` narrows the code's retryability, a `true` never
        widens it (a peer cannot make this node retry what the catalog says will not get better)."""
        code = str(data.get("code", "internal"))
        message = str(data.get("message", ""))
        if code not in CATALOG:
            message = f"[{code}] {message}"
            code = "internal"
        details = data.get("details")
        return cls(
            code,
            message,
            hint=str(data["hint"]) if data.get("hint") is not None else None,
            retryable=bool(data["retryable"]) if "retryable" in data else None,
            details=details if isinstance(details, dict) else None,
        )


def http_status(code: str) -> int:
    kind = CATALOG.get(code)
    return kind.http_status if kind else 500


def is_retryable(code: str) -> bool:
    """Whether an error with this code may succeed later without changes: the catalog's word (an unknown
    code is not). The one rule for every retry loop."""
    kind = CATALOG.get(code)
    return kind is not None and kind.retryable


__all__ = ["CATALOG", "AgoraError", "ErrorKind", "http_status", "is_retryable"]
