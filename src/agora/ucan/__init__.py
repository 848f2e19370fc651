"""UCAN 1.0 capabilities: who may ask whom to do what (pure logic, no I/O).

- `envelope.py`: the signed DAG-CBOR envelope `[sig, {"h": varsig, tag: payload}]`; `seal_envelope`,
  `open_envelope`, `Envelope.verify` (reused by agora.wire for receipts and announcements).
- `token.py`: `Delegation` and `Invocation` (decode + shape checks, raw bytes and CID kept),
  `delegate(...)` and `invoke(...)` to sign new ones.
- `command.py`: command path syntax and coverage ("/a" covers "/a/b", not "/ab").
- `selector.py`: jq-style selectors of the policy language (parse, resolve).
- `policy.py`: `Policy.from_json(rules).matches(args)`: the policy language, compiled once.
- `validate.py`: `validate_invocation(...)`: signatures, time bounds, chain alignment, commands,
  policies, replay; delegations verified once and cached by CID.
- `replay.py`: `ReplayCache`: CIDs of accepted invocations until `exp + skew`, bounded, fail-closed,
  split into `ReplayShare`s with per-issuer quotas; `MAX_LIFETIME` (600 s).
"""

from agora.ucan.command import covers, is_valid_command
from agora.ucan.envelope import VARSIG_ED25519_DAG_CBOR, Envelope, open_envelope, seal_envelope
from agora.ucan.policy import Policy
from agora.ucan.replay import MAX_LIFETIME, ReplayCache, ReplayShare
from agora.ucan.token import DELEGATION_TAG, INVOCATION_TAG, Delegation, Invocation, delegate, invoke, token_cid
from agora.ucan.validate import ProofSource, clear_verified_cache, validate_invocation

__all__ = [
    "DELEGATION_TAG",
    "INVOCATION_TAG",
    "MAX_LIFETIME",
    "VARSIG_ED25519_DAG_CBOR",
    "Delegation",
    "Envelope",
    "Invocation",
    "Policy",
    "ProofSource",
    "ReplayCache",
    "ReplayShare",
    "clear_verified_cache",
    "covers",
    "delegate",
    "invoke",
    "is_valid_command",
    "open_envelope",
    "seal_envelope",
    "token_cid",
    "validate_invocation",
]
