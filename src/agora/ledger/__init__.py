"""Money: a double-entry journal in integer minor units, escrow per contract, stake, and `Settlement`.

- `interfaces.py` (pure): account names (`wallet`, `escrow_account`, `stake_account`, `FEES`, `ISSUANCE`,
  `account_kind`), `Posting`, `Entry` (hash-chained), `EscrowState`, `VerifyReport`, and the two plug
  points: `JournalStore` (compare-and-append storage of entries) and `Settlement` (what the rest of agora
  calls to move money).
- `core.py` (pure): `Books` (balances, escrows, idempotency keys rebuilt from entries), the rules every
  entry passes, `verify_chain`, `request_digest`.
- `escrow.py` (pure): the escrow state machine (`transition`) and its payout postings; `pro_rata` (what a
  partial delivery is worth).
- `ledger.py`: `Ledger`: the books kept in step with a store; `execute` (idempotent, serialized,
  compare-and-append with bounded reload-and-retry), `verify`, `entries`.
- `settlement.py`: `InternalLedgerSettlement`: `Settlement` on a `Ledger`: who may do what, and the
  signed evidence (usage and metering receipts) checked before anything is planned; `slash_proven`, `stakes`.
- `proof.py` (pure): `check_claim`: what a slash claim's signed usage receipts must prove (redundancy
  contradicted the accused), `SlashProof`.
- `journal_memory.py`, `journal_sqlite.py`, `journal_jetstream.py`: the three `JournalStore`s.

- `trust.py` (pure): `Evidence`, `TrustSettings`, `trust_report` (a provider's score with its breakdown,
  exponential decay, the prior for unknown providers), `penalty` (reliability penalty with a growing cooldown).
- `evidence.py`: `TrustBook`: the evidence kept durably in the node's store, latency EWMAs, `view()` for
  matching.

The signed metering receipt an escrow is released against lives in `agora.wire.settle`.
"""

from agora.ledger.core import Books, request_digest, verify_chain
from agora.ledger.escrow import pro_rata
from agora.ledger.evidence import TrustBook, TrustView
from agora.ledger.interfaces import (
    ACCOUNT_KINDS,
    ENTRY_KINDS,
    ESCROW_STATES,
    FEES,
    ISSUANCE,
    SETTLED_STATES,
    AccountKind,
    Entry,
    EntryKind,
    EscrowState,
    EscrowStatus,
    JournalStore,
    Posting,
    Settlement,
    VerifyReport,
    account_kind,
    account_owner,
    escrow_account,
    may_go_negative,
    stake_account,
    wallet,
)
from agora.ledger.journal_memory import MemoryJournalStore
from agora.ledger.journal_sqlite import SqliteJournalStore
from agora.ledger.ledger import Ledger, Plan
from agora.ledger.settlement import InternalLedgerSettlement, as_account
from agora.ledger.trust import KINDS as EVIDENCE_KINDS
from agora.ledger.trust import Evidence, Penalty, TrustReport, TrustSettings, penalty
from agora.ledger.trust import report as trust_report

__all__ = [
    "ACCOUNT_KINDS",
    "ENTRY_KINDS",
    "ESCROW_STATES",
    "EVIDENCE_KINDS",
    "FEES",
    "ISSUANCE",
    "SETTLED_STATES",
    "AccountKind",
    "Books",
    "Entry",
    "EntryKind",
    "EscrowState",
    "EscrowStatus",
    "Evidence",
    "InternalLedgerSettlement",
    "JournalStore",
    "Ledger",
    "MemoryJournalStore",
    "Penalty",
    "Plan",
    "Posting",
    "Settlement",
    "SqliteJournalStore",
    "TrustBook",
    "TrustReport",
    "TrustSettings",
    "TrustView",
    "VerifyReport",
    "account_kind",
    "account_owner",
    "as_account",
    "escrow_account",
    "may_go_negative",
    "penalty",
    "pro_rata",
    "request_digest",
    "stake_account",
    "trust_report",
    "verify_chain",
    "wallet",
]
