"""Large global weights through the hub object store (a real nats-server hub, two nodes, bubblewrap
trainers): the owner puts each round's weights once and sends their content ref; the provider reads them
from the hub and checks their sha256 before it trains on them; a ref that lies about its content is
refused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from agora.errors import AgoraError
from agora.fl import remote
from agora.node.compute import compute_of
from agora.node.fl import fl_of
from tests.integration.fl.conftest import index_holds
from tests.integration.node.conftest import NodeFactory
from tests.support import require_binary

pytestmark = pytest.mark.integration

ROUNDS = 2


@pytest.mark.timeout(180)
async def test_large_weights_travel_through_the_hub_object_store_verified(
    make_node: NodeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("bwrap", "bubblewrap")
    monkeypatch.setattr(remote, "INLINE_WEIGHTS_MAX", 0)  # every round's weights count as large
    owner = await make_node("owner", hub=True)
    assert owner.hub is not None
    provider = await make_node("p0", hubs=[owner.hub.url])
    x, y = load_digits(return_X_y=True)
    os.chmod(tmp_path, 0o755)
    path = tmp_path / "part.npz"
    np.savez(path, x=x[:600] / 16.0, y=y[:600])
    await fl_of(provider).datasets.add(path, tags=["digits"], licence="BSD-3-Clause", price_per_update=0)
    await index_holds(owner, [provider.did])

    spec = {
        "schema": {"features": [f"x{i}" for i in range(64)], "label": "y", "classes": [str(i) for i in range(10)]},
        "data_tags": ["digits"],
        "rounds": ROUNDS,
        "min_providers": 1,
        "max_providers": 1,
        "min_fit": 1,
        "round_deadline_s": 60,
        "hyper": {"learning_rate": 0.5},
        "max_update_norm": 1e4,
    }
    started = await fl_of(owner).manager.start(spec)
    assert started["state"] == "running", started
    done = await fl_of(owner).manager.wait(started["run_id"], 120)
    assert done["state"] == "completed" and done["providers"][0]["delivered"] == [1, 2], done
    service = fl_of(provider).service
    assert service.weights_from_hub == ROUNDS  # each round's weights came from the hub, verified

    # a ref whose size lies about the bytes at the hub is refused before anything trains
    hub = compute_of(provider).stores.hub
    assert hub is not None
    ref = (await hub.put(b"not the weights")).to_dict()
    with pytest.raises(AgoraError) as err:
        await service._weights_from_hub({**ref, "size": ref["size"] + 1})
    assert err.value.code == "storage_integrity"
    with pytest.raises(AgoraError) as err:
        await service._weights_from_hub({**ref, "uri": "cas://sha256/" + ref["sha256"]})
    assert err.value.code == "invalid_argument"
    assert service.weights_from_hub == ROUNDS
