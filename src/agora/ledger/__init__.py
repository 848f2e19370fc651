"""Money and trust of the market. (h-trust: this file only exports the trust names; the ledger's own
modules are merged in next to them.)

- `trust.py` (pure): `Evidence`, `TrustSettings`, `report` (a provider's score with its breakdown, exponential
  decay, the prior for unknown providers), `penalty` (reliability penalty with a growing cooldown).
- `evidence.py`: `TrustBook`: the evidence kept durably in the node's store, latency EWMAs, `view()` for
  matching.
"""

from agora.ledger.evidence import TrustBook, TrustView
from agora.ledger.trust import KINDS, Evidence, Penalty, TrustReport, TrustSettings, penalty, report

__all__ = [
    "KINDS",
    "Evidence",
    "Penalty",
    "TrustBook",
    "TrustReport",
    "TrustSettings",
    "TrustView",
    "penalty",
    "report",
]
