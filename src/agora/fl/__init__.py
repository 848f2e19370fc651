"""Federated learning on the market: data-set offers, training intents matched to them, rounds paid per update.

- `datasets.py`: read a local CSV / NPZ / folder data set (schema, rows, size, content hash), `DatasetBook`
  (this node's offers in its store; the local path is never published), `load_arrays` for the trainer.
- `ads.py`: the hub's data-ad index (providers publish their signed `DataAd`, owners read and verify every
  one), `DataAdvertiser`.
- `matching.py` (pure): a training intent against the verified data ads: every reason per offer
  (`data_tags_missing`, `schema_mismatch`, `custom_code_refused`, `over_budget`, ...), counts, the choice.
- `trainers.py` (pure): numpy `SoftmaxRegression` and `MLP` with Flower NumPyClient's shape
  (`get_parameters / fit / evaluate`), `load_custom` for a ported Flower client.
- `strategies.py` (pure): FedAvg, FedProx, Median, TrimmedMean; `check_update` (shape, finite, norm);
  clipping and Gaussian noise; the update's bytes (`encode`/`decode`).

The offer model is `agora.models.dataset`, the intent's training part `agora.models.training`, the signed
messages (data ad, update receipt) `agora.wire.fl`.
"""

from agora.fl.datasets import DatasetBook, Described, inspect_dataset, load_arrays
from agora.fl.matching import DataVerdict, TrainingDecision, match_training
from agora.fl.strategies import FedAvg, FedProx, Median, Strategy, TrimmedMean, Update, check_update, strategy
from agora.fl.trainers import BUILTIN, MLP, SoftmaxRegression, Trainer, load_custom

__all__ = [
    "BUILTIN",
    "MLP",
    "DataVerdict",
    "DatasetBook",
    "Described",
    "FedAvg",
    "FedProx",
    "Median",
    "SoftmaxRegression",
    "Strategy",
    "Trainer",
    "TrainingDecision",
    "TrimmedMean",
    "Update",
    "check_update",
    "inspect_dataset",
    "load_arrays",
    "load_custom",
    "match_training",
    "strategy",
]
