"""Hub settings are checked before anything runs; the config file says exactly what was asked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agora.discovery import HELLO_TOPIC, TOPIC
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.storage.hub import DEFAULT_BUCKET
from agora.transport import ClusterConfig, HubConfig, HubProcess, TlsConfig, routes_for
from agora.transport.hub_config import (
    DEFAULT_DATA_BUCKET,
    DEFAULT_OBJECT_BUCKETS,
    HEADER_ROOM,
    did_of_market_key,
    is_loopback,
    market_key,
    render,
)
from agora.transport.subjects import reply_inbox_prefix, topic_matches


def _fail(code: str, **fields: Any) -> AgoraError:
    fields.setdefault("home", Path("/tmp/agora-hub-test"))
    with pytest.raises(AgoraError) as info:
        HubConfig(**fields).validate()
    assert info.value.code == code, info.value
    return info.value


@pytest.fixture
def cert_files(tmp_path: Path) -> TlsConfig:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("not checked until nats-server loads it\n")
    return TlsConfig(cert_file=tmp_path / "cert.pem", key_file=tmp_path / "key.pem", ca_file=tmp_path / "ca.pem")


def test_defaults_are_valid(tmp_path: Path) -> None:
    config = HubConfig(home=tmp_path)
    config.validate()
    assert config.host == "127.0.0.1" and config.port == 0 and config.jetstream
    assert config.max_payload == 1024 * 1024 + HEADER_ROOM


def test_remote_host_requires_tls(tmp_path: Path, cert_files: TlsConfig) -> None:
    err = _fail("config_invalid", home=tmp_path, host="0.0.0.0")
    assert "TLS" in err.message and "allow_insecure_remote" in err.hint
    assert "--tls-cert" in err.hint and "--tls-key" in err.hint  # the flags a CLI user has, not field names only
    _fail("config_invalid", home=tmp_path, host="192.168.1.10")
    HubConfig(home=tmp_path, host="0.0.0.0", tls=cert_files).validate()
    HubConfig(home=tmp_path, host="0.0.0.0", allow_insecure_remote=True).validate()
    HubConfig(home=tmp_path, host="::1").validate()
    HubConfig(home=tmp_path, host="localhost").validate()


def test_remote_cluster_listen_requires_tls_with_a_ca(tmp_path: Path, cert_files: TlsConfig) -> None:
    cluster = ClusterConfig(host="0.0.0.0", routes=("nats-route://10.0.0.2:6222",))
    _fail("config_invalid", home=tmp_path, cluster=cluster)
    no_ca = TlsConfig(cert_file=cert_files.cert_file, key_file=cert_files.key_file)
    _fail("config_invalid", home=tmp_path, cluster=cluster, tls=no_ca)
    HubConfig(home=tmp_path, cluster=cluster, tls=cert_files).validate()


def test_tls_files_must_exist_and_pair_up(tmp_path: Path, cert_files: TlsConfig) -> None:
    _fail("config_invalid", home=tmp_path, tls=TlsConfig(cert_file=tmp_path / "missing.pem", key_file=tmp_path / "k"))
    _fail("config_invalid", home=tmp_path, tls=TlsConfig(cert_file=cert_files.cert_file))
    _fail("config_invalid", home=tmp_path, tls=TlsConfig(ca_file=cert_files.ca_file))
    _fail(
        "config_invalid",
        home=tmp_path,
        tls=TlsConfig(cert_file=cert_files.cert_file, key_file=cert_files.key_file, verify_clients=True),
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"port": -1},
        {"port": 70000},
        {"monitor_port": 65536},
        {"host": ""},
        {"host": "a b"},
        {"host": 'x"y'},
        {"server_name": "has space"},
        {"server_name": ""},
        {"max_payload": 0},
        {"max_payload": 65 * 1024 * 1024},
        {"jetstream_max_memory": 0},
        {"allowed_dids": ()},
        {"home": Path('/tmp/quote"d')},
        {"cluster": ClusterConfig(routes=())},
        {"cluster": ClusterConfig(name="bad name", routes=("nats-route://127.0.0.1:1",))},
        {"cluster": ClusterConfig(routes=("http://127.0.0.1:1",))},
        {"cluster": ClusterConfig(routes=('nats-route://a"b:1',))},
        {"cluster": ClusterConfig(port=99999, routes=("nats-route://127.0.0.1:1",))},
    ],
)
def test_bad_settings_are_config_invalid(fields: dict[str, Any]) -> None:
    _fail("config_invalid", **fields)


def test_allowlist_entries_must_be_did_keys(tmp_path: Path) -> None:
    _fail("did_invalid", home=tmp_path, allowed_dids=("not-a-did",))


def test_a_bad_config_creates_no_files(tmp_path: Path) -> None:
    with pytest.raises(AgoraError):
        HubProcess(HubConfig(home=tmp_path / "hub", host="0.0.0.0"))
    assert not (tmp_path / "hub").exists()


def test_render_open_hub(tmp_path: Path) -> None:
    text = render(HubConfig(home=tmp_path, server_name="hub1"), ports_dir=tmp_path / "run")
    assert 'server_name: "hub1"' in text
    assert 'host: "127.0.0.1"' in text
    assert "port: -1" in text
    assert f'store_dir: "{tmp_path / "jetstream"}"' in text
    assert f'ports_file_dir: "{tmp_path / "run"}"' in text
    assert "authorization" not in text and "tls" not in text and "http:" not in text and "cluster" not in text


def test_render_pins_ports_found_on_first_start(tmp_path: Path) -> None:
    config = HubConfig(home=tmp_path, monitor_port=0, cluster=ClusterConfig(routes=("nats-route://127.0.0.1:7000",)))
    text = render(config, ports_dir=tmp_path, ports={"client": 4333, "monitor": 8333, "cluster": 6333})
    assert "port: 4333" in text
    assert 'http: "127.0.0.1:8333"' in text
    assert 'listen: "127.0.0.1:6333"' in text
    assert 'routes: ["nats-route://127.0.0.1:7000"]' in text


def test_render_allowlist_as_nkeys(tmp_path: Path) -> None:
    keys = [Keypair.generate(), Keypair.generate()]
    text = render(HubConfig(home=tmp_path, allowed_dids=tuple(k.did for k in keys)), ports_dir=tmp_path)
    assert "authorization {" in text
    for key in keys:
        assert f'{{nkey: "{key.nkey}", permissions: ' in text
        assert key.nkey.startswith("U")


def _user_line(text: str, nkey: str) -> str:
    (line,) = [line for line in text.splitlines() if f'nkey: "{nkey}"' in line]
    return line


def test_each_user_may_read_only_its_own_subjects(tmp_path: Path) -> None:
    a, b = Keypair.generate(), Keypair.generate()
    config = HubConfig(home=tmp_path, allowed_dids=(a.did, b.did), topics=("agora.announce", "agora.jobs.>"))
    perms = config.user_permissions(a.did)
    assert perms["subscribe"] == {
        "allow": [f"agora.node.{a.did}", reply_inbox_prefix(a.did) + ".>", "agora.announce", "agora.jobs.>"]
    }
    publish = perms["publish"]["allow"]  # type: ignore[index]
    assert publish[:3] == ["agora.node.*", "agora.announce", "agora.jobs.>"]
    assert perms["allow_responses"] is True
    # nothing that reaches other nodes' replies or lets a node create or change a stream
    assert not any(s.startswith("_INBOX") for s in publish)
    assert not any(s in publish for s in (">", "$JS.API.>", "$JS.>", "$O.>"))
    assert not any(".STREAM.CREATE." in s or ".STREAM.UPDATE." in s or ".STREAM.DELETE." in s for s in publish)
    assert "$O.agora-results.>" in publish and "$JS.API.STREAM.INFO.OBJ_agora-results" in publish
    text = render(config, ports_dir=tmp_path)
    assert reply_inbox_prefix(b.did) not in _user_line(text, a.nkey)
    assert reply_inbox_prefix(b.did) in _user_line(text, b.nkey)


def test_admins_and_the_hub_service_key_are_unrestricted(tmp_path: Path) -> None:
    a, admin, service = Keypair.generate(), Keypair.generate(), Keypair.generate()
    config = HubConfig(home=tmp_path, allowed_dids=(a.did, admin.did), admin_dids=(admin.did,))
    text = render(config, ports_dir=tmp_path, service_nkeys=[service.nkey])
    assert "permissions" in _user_line(text, a.nkey)
    assert "permissions" not in _user_line(text, admin.nkey)
    assert "permissions" not in _user_line(text, service.nkey)
    assert service.seed.hex() not in text and service.nkey_seed() not in text


def test_object_store_permissions_follow_the_buckets(tmp_path: Path) -> None:
    a = Keypair.generate()
    config = HubConfig(home=tmp_path, allowed_dids=(a.did,), object_buckets=("one", "two"))
    publish = config.user_permissions(a.did)["publish"]["allow"]  # type: ignore[index]
    assert "$O.one.>" in publish and "$O.two.>" in publish and "$O.agora-results.>" not in publish
    no_js = HubConfig(home=tmp_path, allowed_dids=(a.did,), jetstream=False)
    assert not any(s.startswith("$") for s in no_js.user_permissions(a.did)["publish"]["allow"])  # type: ignore[index]


def test_market_permissions_read_every_key_and_write_only_its_own(tmp_path: Path) -> None:
    a, b = Keypair.generate(), Keypair.generate()
    config = HubConfig(home=tmp_path, allowed_dids=(a.did, b.did), market_bucket="ads", data_bucket="data")
    publish = config.user_permissions(a.did)["publish"]["allow"]  # type: ignore[index]
    kv_writes = [s for s in publish if s.startswith("$KV.")]
    assert kv_writes == ["$KV.ads." + market_key(a.did), "$KV.data." + market_key(a.did)]  # capacity, data ads
    assert market_key(b.did) not in " ".join(publish)
    for stream in ("KV_ads", "KV_data"):
        assert f"$JS.API.STREAM.INFO.{stream}" in publish and f"$JS.API.CONSUMER.CREATE.{stream}.>" in publish
    assert not any("PURGE.KV_" in s or "MSG.DELETE" in s or "STREAM.CREATE" in s for s in publish)
    assert publish.count("$JS.API.INFO") == 1
    default = HubConfig(home=tmp_path, allowed_dids=(a.did,)).user_permissions(a.did)["publish"]["allow"]  # type: ignore[index]
    assert f"$KV.{DEFAULT_DATA_BUCKET}.{market_key(a.did)}" in default  # the data-ad bucket is open by default
    data_only = HubConfig(home=tmp_path, allowed_dids=(a.did,), market_bucket=None, object_buckets=())
    assert [s for s in data_only.user_permissions(a.did)["publish"]["allow"] if s.startswith("$KV.")] == [  # type: ignore[index]
        f"$KV.{DEFAULT_DATA_BUCKET}.{market_key(a.did)}"
    ]
    assert HubProcess(replace(data_only, ledger_stream=None))._provisions_buckets  # the hub creates the data bucket
    none = HubConfig(home=tmp_path, allowed_dids=(a.did,), market_bucket=None, data_bucket=None, object_buckets=())
    assert not any(s.startswith("$") for s in none.user_permissions(a.did)["publish"]["allow"])  # type: ignore[index]
    assert did_of_market_key(market_key(a.did)) == a.did


def test_market_bucket_copies_follow_the_cluster(tmp_path: Path) -> None:
    routes = routes_for([f"nats://127.0.0.1:{p}" for p in (1, 2, 3, 4)])
    assert HubConfig(home=tmp_path).market_copies == 1
    assert HubConfig(home=tmp_path, cluster=ClusterConfig(port=1, routes=routes)).market_copies == 3
    assert HubConfig(home=tmp_path, cluster=ClusterConfig(port=1, routes=routes[:2])).market_copies == 2
    assert HubConfig(home=tmp_path, market_replicas=5).market_copies == 5


def test_permission_settings_are_validated(tmp_path: Path) -> None:
    a, b = Keypair.generate(), Keypair.generate()
    _fail("config_invalid", home=tmp_path, allowed_dids=(a.did,), admin_dids=(b.did,))
    _fail("config_invalid", home=tmp_path, admin_dids=(a.did,))  # admins need an allowlist
    for topics in (("agora.>",), (">",), ("agora.*.x",), ("*.announce",), ("agora.node.x",), ("_INBOX.>",), ("$JS.>",)):
        _fail("topic_invalid", home=tmp_path, allowed_dids=(a.did,), topics=topics)
    _fail("config_invalid", home=tmp_path, topics="agora.announce")
    for bucket in ("", "a.b", "a b", "x" * 65, "*"):
        _fail("config_invalid", home=tmp_path, object_buckets=(bucket,))
        _fail("config_invalid", home=tmp_path, market_bucket=bucket)
        _fail("config_invalid", home=tmp_path, data_bucket=bucket)
    _fail("config_invalid", home=tmp_path, market_bucket="ads", data_bucket="ads")  # data ads need their own
    for ttl in (0, -1, 1.5, True):
        _fail("config_invalid", home=tmp_path, market_ttl_s=ttl)
    for replicas in (0, 6, True):
        _fail("config_invalid", home=tmp_path, market_replicas=replicas)
    HubConfig(home=tmp_path, allowed_dids=(a.did,), admin_dids=(a.did,), topics=("agora.*", "jobs.>")).validate()


def test_the_default_topics_cover_what_agora_publishes() -> None:
    """Discovery must keep working on an allowlisted hub: its topics are in the default permissions."""
    for topic in (TOPIC, HELLO_TOPIC):
        assert any(topic_matches(pattern, topic) for pattern in HubConfig(home=Path("/tmp/x")).topics), topic
    assert DEFAULT_OBJECT_BUCKETS == (DEFAULT_BUCKET,)


def test_render_tls(tmp_path: Path, cert_files: TlsConfig) -> None:
    tls = TlsConfig(cert_file=cert_files.cert_file, key_file=cert_files.key_file, ca_file=cert_files.ca_file,
                    verify_clients=True)  # fmt: skip
    text = render(HubConfig(home=tmp_path, tls=tls), ports_dir=tmp_path)
    assert f'cert_file: "{cert_files.cert_file}"' in text
    assert "verify: true" in text


def test_no_jetstream_no_store(tmp_path: Path) -> None:
    text = render(HubConfig(home=tmp_path, jetstream=False), ports_dir=tmp_path / "run")
    assert "jetstream {" not in text and "store_dir" not in text


def test_routes_for_and_loopback() -> None:
    assert routes_for(["nats://127.0.0.1:6222", "tls://h:1"]) == ("nats-route://127.0.0.1:6222", "nats-route://h:1")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org") and not is_loopback("10.0.0.1")
