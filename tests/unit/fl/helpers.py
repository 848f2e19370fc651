"""Data offers and training specs for the FL unit tests."""

from __future__ import annotations

from typing import Any

from agora.identity import Keypair
from agora.models.dataset import DatasetOffer, dataset_offer_from_dict
from agora.models.training import TrainingSpec, training_from_dict

NOW = 1_000_000
FEATURES = ["f0", "f1", "f2"]
HASH = "sha256:" + "ab" * 32


def offer(provider: Keypair, **extra: Any) -> DatasetOffer:
    doc: dict[str, Any] = {
        "offer_id": f"data-{provider.did[-6:]}",
        "provider": provider.did,
        "name": "digits part",
        "tags": ["digits", "images"],
        "format": "csv",
        "schema": {"features": FEATURES, "label": "y", "classes": ["0", "1"]},
        "rows": 100,
        "size_bytes": 1000,
        "content_hash": HASH,
        "licence": "CC-BY-4.0",
        "price_per_update": 5,
        "custom_code": False,
        "valid_from": NOW - 10,
        "valid_until": NOW + 3600,
    }
    doc.update(extra)
    return dataset_offer_from_dict(doc)


def spec(**extra: Any) -> TrainingSpec:
    doc: dict[str, Any] = {
        "schema": {"features": FEATURES, "label": "y", "classes": ["0", "1"]},
        "data_tags": ["digits"],
        "rounds": 3,
        "min_providers": 1,
        "max_providers": 3,
    }
    doc.update(extra)
    return training_from_dict(doc)
