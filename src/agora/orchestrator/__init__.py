"""The requester side of agora: running a job this node was given, on the node it names.

- `runner.py`: `JobRunner` (submit, get, list, logs, cancel, outputs, wait; stages, retries, cancel
  propagation, receipt and output verification), `RunnerSettings`.
- `record.py`: `JobRecord` and `UnitRecord`, the job's state machine and what the store keeps.
- `placement.py`: `Placer`: the market placement of one unit (match, bid requests to the best k, award
  the best bid, read the commit), `PlacementRound` (its `why`), `PlacementSettings`.
- `evidence.py`: `TrustRecorder`: outcomes become trust evidence; the placer's trust view (`match_policy`).
- `lostcommit.py`: `CommitLost`: a start on a committed placement whose provider died or restarted (placed
  again without it, no retry attempt spent).
- `redundancy.py`: `RedundantUnit`: a unit with `verification` on k distinct providers, accepted when m agree.
- `replicas.py`: `Replica`, `tally` (pure): the replicas as data and how their signed outputs compare.
- `settle.py`: `Settler`: every committed placement is a contract; its money through a `Settlement` per the
  job's payment mode (lock, countersign and release, refund, prepay, dispute), `SettleSettings`.
- `stakes.py`: `StakeView`: the candidates' stake at the hub (one batched call per round, bounded staleness)
  for a job's `placement.min_stake`.
- `slashing.py`: `Slasher`: a provider outvoted by redundancy is slashed at the hub on the signed receipts.
- `match.py`: `Matcher`: an open intent matched on the market (preview: nothing changes), its contracts or
  the rejection counts; the intent fulfilled when its job completes.
- `prepare.py`: `prepare_task`: files of this machine named by the spec become bytes (`Blob`) to send.
- `provider.py`: `ProviderLink`: calls to one provider's /agora/alloc behaviors with the right proofs.
- `outputs.py`: `fetch_output` (from the hub / S3 where published, else the provider), `PublishedOutputs`.
- `verify.py`: `verify_receipt`, `safe_output_path`.
- `joblog.py`: `JobLog`, the job's merged, bounded log read by cursor.
"""

from agora.orchestrator.joblog import JobLog
from agora.orchestrator.match import Matcher
from agora.orchestrator.outputs import PublishedOutputs, fetch_output
from agora.orchestrator.placement import Placed, PlacementRound, PlacementSettings, Placer
from agora.orchestrator.prepare import Blob, PreparedTask, prepare_task
from agora.orchestrator.provider import ProofSource, ProviderLink
from agora.orchestrator.record import JOB_TERMINAL, UNIT_TERMINAL, JobRecord, UnitRecord
from agora.orchestrator.runner import JobRunner, RunnerSettings
from agora.orchestrator.settle import Settler, SettleSettings
from agora.orchestrator.verify import safe_output_path, verify_receipt

__all__ = [
    "JOB_TERMINAL",
    "UNIT_TERMINAL",
    "Blob",
    "JobLog",
    "JobRecord",
    "JobRunner",
    "Matcher",
    "Placed",
    "PlacementRound",
    "PlacementSettings",
    "Placer",
    "PreparedTask",
    "ProofSource",
    "ProviderLink",
    "PublishedOutputs",
    "RunnerSettings",
    "SettleSettings",
    "Settler",
    "UnitRecord",
    "fetch_output",
    "prepare_task",
    "safe_output_path",
    "verify_receipt",
]
