"""What a hub is configured with, its validation, and its nats-server config file (pure, no I/O).

Validation happens before anything is written or started, so a bad setting costs nothing and
leaves no half-made hub behind. The rendered file is the only place settings reach nats-server:
nothing sensitive is ever put on its command line (visible to every user in `ps`).

An allowlisted hub also confines every node to its own subjects (`user_permissions`): it may read
only its inbox, its reply inbox and the public topics, so no member can read, steal or race the
replies of another. An open hub has no identities to attach permissions to; it cannot do this.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agora.errors import AgoraError
from agora.identity import nkey_from_public, public_from_did
from agora.transport.interfaces import DEFAULT_MAX_MESSAGE_BYTES
from agora.transport.subjects import (
    PUBLIC_TOPICS,
    inbox_subject,
    reply_inbox_prefix,
    validate_public_topic,
)
from agora.transport.tls import TlsConfig

HEADER_ROOM = 64 * 1024
"""The hub's max_payload exceeds the node limit by this much: NATS counts headers in the payload."""

_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ROUTE_RE = re.compile(r"(nats-route|nats|tls)://[A-Za-z0-9.:\[\]_-]+")
_NATS_MAX_PAYLOAD = 64 * 1024 * 1024
_BUCKET_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_OBJECT_BUCKETS: tuple[str, ...] = ("agora-results",)
"""The hub object store's bucket (agora.storage.hub.DEFAULT_BUCKET): open to allowlisted nodes."""
DEFAULT_MARKET_BUCKET = "agora-market"
"""The JetStream key-value bucket of capacity ads (agora.market.index_nats): one key per provider."""
DEFAULT_DATA_BUCKET = "agora-data-ads"
"""The JetStream key-value bucket of data ads (agora.fl.ads): the market bucket's shape, TTL and copies."""
DEFAULT_MARKET_TTL_S = 180
"""How long the market bucket keeps an ad that is not republished (its stream's max age)."""
DEFAULT_LEDGER_STREAM = "agora-ledger"
"""The JetStream stream of the hub's ledger journal (agora.ledger.journal_jetstream): written only by admins."""
LEDGER_SUBJECT = "agora.ledger.journal"
"""The one subject of the ledger stream; no member may publish on it (only `admin_dids`)."""
_MAX_REPLICAS = 5


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ClusterConfig:
    """NATS routes to other hubs of the same cluster (full mesh is formed from any route)."""

    name: str = "agora"
    host: str = "127.0.0.1"
    port: int = 0
    routes: tuple[str, ...] = ()


@dataclass(frozen=True)
class HubConfig:
    """Everything a hub needs. `port=0` (and `monitor_port=0`, `cluster.port=0`) pick a free port.

    `allowed_dids=None` is an open hub; a tuple is an allowlist: only those DIDs (as NATS nkeys,
    proven by signing the server's nonce) may connect, each confined to its own inbox, its own reply
    inbox, the `topics` patterns, the JetStream object store `object_buckets` and the market index
    bucket `market_bucket` (read all, write only its own key; TTL `market_ttl_s`, `market_replicas`
    copies: default 1, or min(3, number of routes) on a cluster), and the federated-learning data-ad
    bucket `data_bucket` (the same permissions, TTL and copies). It also creates the ledger journal
    stream `ledger_stream` (as many copies as the market bucket), which only `admin_dids` may use.
    `admin_dids`
    (a subset of the allowlist, e.g. the operator's tools) have no restriction at all: whoever can
    create a JetStream stream can make it capture any subject, other nodes' inboxes included.
    A hub listening beyond loopback must use TLS unless `allow_insecure_remote` says the operator
    knows what they are doing.
    """

    home: Path
    host: str = "127.0.0.1"
    port: int = 0
    monitor_port: int | None = None
    jetstream: bool = True
    jetstream_max_memory: int | None = None
    jetstream_max_file: int | None = None
    max_payload: int = DEFAULT_MAX_MESSAGE_BYTES + HEADER_ROOM
    server_name: str = field(default_factory=lambda: "agora-hub-" + secrets.token_hex(4))
    cluster: ClusterConfig | None = None
    allowed_dids: tuple[str, ...] | None = None
    admin_dids: tuple[str, ...] = ()
    topics: tuple[str, ...] = PUBLIC_TOPICS
    object_buckets: tuple[str, ...] = DEFAULT_OBJECT_BUCKETS
    market_bucket: str | None = DEFAULT_MARKET_BUCKET
    market_ttl_s: int = DEFAULT_MARKET_TTL_S
    market_replicas: int | None = None
    data_bucket: str | None = DEFAULT_DATA_BUCKET
    ledger_stream: str | None = DEFAULT_LEDGER_STREAM
    tls: TlsConfig | None = None
    allow_insecure_remote: bool = False

    def validate(self) -> None:
        """Raise `config_invalid` (or `did_invalid`) naming the first bad setting."""
        _check_host("host", self.host)
        _check_port("port", self.port)
        if self.monitor_port is not None:
            _check_port("monitor_port", self.monitor_port)
        if not _NAME_RE.fullmatch(self.server_name):
            raise AgoraError("config_invalid", "server_name: 1-64 letters, digits, '-' or '_'")
        if not 1 <= self.max_payload <= _NATS_MAX_PAYLOAD:
            raise AgoraError("config_invalid", f"max_payload must be 1..{_NATS_MAX_PAYLOAD} bytes")
        for name in ("jetstream_max_memory", "jetstream_max_file"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise AgoraError("config_invalid", f"{name} must be positive")
        _check_path("home", self.home)
        if self.tls is not None:
            self.tls.check_files(server=True)
        remote = not is_loopback(self.host) or (self.cluster is not None and not is_loopback(self.cluster.host))
        if remote and self.tls is None and not self.allow_insecure_remote:
            raise AgoraError(
                "config_invalid",
                "a hub reachable beyond this machine must use TLS",
                hint="Give the hub a certificate (`agora hub up --tls-cert FILE --tls-key FILE`; HubConfig.tls) or "
                "keep it on 127.0.0.1 (--host); in Python, allow_insecure_remote=True overrides this for closed "
                "networks.",
            )
        if self.allowed_dids is not None:
            if not self.allowed_dids:
                raise AgoraError("config_invalid", "allowed_dids is empty: no node could connect")
            for did in self.allowed_dids:
                public_from_did(did)
                inbox_subject(did)
        stray = [did for did in self.admin_dids if did not in (self.allowed_dids or ())]
        if stray:
            raise AgoraError("config_invalid", f"admin_dids must be on the allowlist (allowed_dids): {stray[0]!r}")
        self._validate_permissions()
        if self.cluster is not None:
            self._validate_cluster(self.cluster)

    def _validate_permissions(self) -> None:
        if isinstance(self.topics, str) or isinstance(self.object_buckets, str):
            raise AgoraError("config_invalid", "topics and object_buckets are lists, not single strings")
        for topic in self.topics:
            validate_public_topic(topic)
        for bucket in self.object_buckets:
            if not isinstance(bucket, str) or not _BUCKET_RE.fullmatch(bucket):
                raise AgoraError("config_invalid", f"object bucket {bucket!r}: 1-64 letters, digits, '-' or '_'")
        for name in ("market_bucket", "data_bucket", "ledger_stream"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not _BUCKET_RE.fullmatch(value)):
                raise AgoraError("config_invalid", f"{name} {value!r}: 1-64 letters, digits, '-' or '_'")
        if self.data_bucket is not None and self.data_bucket == self.market_bucket:
            raise AgoraError(
                "config_invalid",
                f"data_bucket and market_bucket are both {self.data_bucket!r}: data ads need a bucket of their own",
            )
        if isinstance(self.market_ttl_s, bool) or not isinstance(self.market_ttl_s, int) or self.market_ttl_s < 1:
            raise AgoraError(
                "config_invalid", f"market_ttl_s must be a positive number of seconds, got {self.market_ttl_s!r}"
            )
        if self.market_replicas is not None and (
            isinstance(self.market_replicas, bool)
            or not isinstance(self.market_replicas, int)
            or not 1 <= self.market_replicas <= _MAX_REPLICAS
        ):
            raise AgoraError(
                "config_invalid", f"market_replicas must be 1..{_MAX_REPLICAS}, got {self.market_replicas!r}"
            )

    def _validate_cluster(self, cluster: ClusterConfig) -> None:
        if not _NAME_RE.fullmatch(cluster.name):
            raise AgoraError("config_invalid", "cluster.name: 1-64 letters, digits, '-' or '_'")
        _check_host("cluster.host", cluster.host)
        _check_port("cluster.port", cluster.port)
        if (
            not is_loopback(cluster.host)
            and not self.allow_insecure_remote
            and (self.tls is None or not self.tls.ca_file)
        ):
            raise AgoraError(
                "config_invalid",
                "cluster routes beyond this machine need TLS with tls.ca_file (hubs verify each other)",
            )
        for route in cluster.routes:
            if not _ROUTE_RE.fullmatch(route):
                raise AgoraError("config_invalid", f"cluster route {route!r} must look like nats-route://host:port")
        if self.jetstream and not cluster.routes:
            raise AgoraError(
                "config_invalid",
                "JetStream in a cluster needs at least one route",
                hint="List the other hubs' cluster URLs (this hub's own URL may be in the list too).",
            )

    @property
    def market_copies(self) -> int:
        """Replicas of the market bucket: `market_replicas`, else 1, or min(3, routes) on a cluster."""
        if self.market_replicas is not None:
            return self.market_replicas
        if self.cluster is None:
            return 1
        return max(1, min(3, len(set(self.cluster.routes))))

    def nkeys(self) -> list[str]:
        return [nkey_from_public(public_from_did(did)) for did in self.allowed_dids or ()]

    def user_permissions(self, did: str) -> dict[str, object]:
        """What an allowlisted, non-admin `did` may do on this hub (nats-server `permissions`).

        Publish: any node's inbox (that is how requests are sent), the public topics, the
        object store's subjects and the market and data-ad buckets' read subjects plus its OWN key only;
        replies only through `allow_responses` (once, to the reply
        subject of a message this node received), never to arbitrary `_INBOX` subjects.
        Subscribe: its own inbox, its own reply inbox (`reply_inbox_prefix`), the public topics.
        No JetStream stream may be created or changed (a stream can capture any subject).
        """
        publish = ["agora.node.*", *self.topics]
        if self.jetstream and self.object_buckets:
            publish.extend(("$JS.API.INFO", "$JS.API.STREAM.NAMES"))  # names: js.subscribe finds a stream by subject
            for bucket in self.object_buckets:
                publish.extend(_object_store_subjects(bucket))
        for kv in (self.market_bucket, self.data_bucket) if self.jetstream else ():
            if kv is not None:
                if "$JS.API.INFO" not in publish:
                    publish.append("$JS.API.INFO")
                publish.extend(market_subjects(kv, did))
        return {
            "publish": {"allow": publish},
            "subscribe": {"allow": [inbox_subject(did), reply_inbox_prefix(did) + ".>", *self.topics]},
            "allow_responses": True,
        }


def _object_store_subjects(bucket: str) -> list[str]:
    """The JetStream API subjects nats-py's object store uses on one bucket, and nothing more.

    Read from nats-py 2.16 (js/object_store.py, js/manager.py, js/client.py) and checked by the
    storage conformance suite on an allowlisted hub: stream info, last message by subject
    (STREAM.MSG.GET or DIRECT.GET), purge (delete), ordered consumers for reads (create, info,
    delete; flow control and acks), and the bucket's own `$O.<bucket>.` subjects.
    """
    stream = f"OBJ_{bucket}"
    return [
        *_stream_reads(stream),
        f"$JS.API.STREAM.PURGE.{stream}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.ACK.{stream}.>",
        f"$O.{bucket}.>",
    ]


def _stream_reads(stream: str) -> list[str]:
    """Reading one JetStream stream as nats-py does: its info, a message by subject (STREAM.MSG.GET or
    DIRECT.GET), and ordered consumers (create, info, delete, flow control)."""
    api = "$JS.API."
    return [
        f"{api}STREAM.INFO.{stream}",
        f"{api}STREAM.MSG.GET.{stream}",
        f"{api}DIRECT.GET.{stream}",
        f"{api}DIRECT.GET.{stream}.>",
        f"{api}CONSUMER.CREATE.{stream}",
        f"{api}CONSUMER.CREATE.{stream}.>",
        f"{api}CONSUMER.INFO.{stream}.*",
        f"{api}CONSUMER.DELETE.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def market_key(did: str) -> str:
    """A provider's key in the market bucket: its DID with `:` as `.` and `%` as `=` (reversible; a DID
    that cannot be a subject token is `did_invalid`)."""
    inbox_subject(did)  # the DID rules of subjects: no '.', wildcards or spaces
    return did.replace(":", ".").replace("%", "=")


def did_of_market_key(key: str) -> str:
    return key.replace(".", ":").replace("=", "%")


def market_subjects(bucket: str, did: str) -> list[str]:
    """What a node may publish on the market bucket (or the data-ad bucket, of the same shape): read every
    key (stream info, get, an ordered consumer to list and watch) and write ONE key, its own (`put` and
    `delete` both publish to `$KV.<bucket>.<key>`).
    No purge (it takes a subject filter) and no message delete: a member cannot touch another's ad.

    Read from nats-py 2.16 (js/kv.py, js/client.py key_value/watch, js/manager.py get_msg) and checked on an
    allowlisted hub by tests/integration/market/test_market_hub.py.
    """
    return [*_stream_reads(f"KV_{bucket}"), f"$KV.{bucket}.{market_key(did)}"]


def _check_host(name: str, host: str) -> None:
    if not host or any(c in host for c in '"\\ \n\r\t/'):
        raise AgoraError("config_invalid", f"{name} {host!r} is not a host name or address")


def _check_port(name: str, port: int) -> None:
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise AgoraError("config_invalid", f"{name} must be 0..65535 (0 picks a free port), got {port!r}")


def _check_path(name: str, path: Path) -> None:
    if any(c in str(path) for c in '"\n\r\\'):
        raise AgoraError("config_invalid", f"{name} must not contain quotes, backslashes or newlines")


def _q(value: str) -> str:
    return json.dumps(value)


def _hostport(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port if port else -1}"


def render(
    config: HubConfig, *, ports_dir: Path, ports: dict[str, int] | None = None, service_nkeys: Sequence[str] = ()
) -> str:
    """The nats-server config file. `ports` pins ports found on a first start (for restarts).

    `service_nkeys` are extra unrestricted users of an allowlisted hub: the hub process's own
    short-lived key that creates the object store buckets (its secret never leaves memory).
    """
    ports = ports or {}
    port = ports.get("client", config.port)
    lines = [
        "# written by agora.transport.hub: edit the hub's settings, not this file",
        f"server_name: {_q(config.server_name)}",
        f"host: {_q(config.host)}",
        f"port: {port if port else -1}",
        f"max_payload: {config.max_payload}",
        f"ports_file_dir: {_q(str(ports_dir))}",
    ]
    if config.monitor_port is not None:
        lines.append(f"http: {_q(_hostport(config.host, ports.get('monitor', config.monitor_port)))}")
    if config.jetstream:
        js = [f"store_dir: {_q(str(config.home / 'jetstream'))}"]
        if config.jetstream_max_memory is not None:
            js.append(f"max_memory_store: {config.jetstream_max_memory}")
        if config.jetstream_max_file is not None:
            js.append(f"max_file_store: {config.jetstream_max_file}")
        lines.append("jetstream {\n  " + "\n  ".join(js) + "\n}")
    if config.tls is not None:
        lines.append("tls " + _tls_block(config.tls, verify=config.tls.verify_clients))
    if config.allowed_dids is not None:
        lines.append(_authorization_block(config, service_nkeys))
    if config.cluster is not None:
        lines.append(_cluster_block(config.cluster, config.tls, ports.get("cluster", config.cluster.port)))
    return "\n".join(lines) + "\n"


def _authorization_block(config: HubConfig, service_nkeys: Sequence[str]) -> str:
    users = []
    for did, nkey in zip(config.allowed_dids or (), config.nkeys(), strict=True):
        if did in config.admin_dids:
            users.append("{nkey: " + _q(nkey) + "}  # admin: " + did)
        else:
            users.append("{nkey: " + _q(nkey) + ", permissions: " + _json(config.user_permissions(did)) + "}")
    users.extend("{nkey: " + _q(k) + "}  # the hub's own service key" for k in service_nkeys)
    return "authorization {\n  users = [\n    " + "\n    ".join(users) + "\n  ]\n}"


def _json(value: object) -> str:
    """NATS config accepts JSON; one user per line keeps the file readable and diffable."""
    return json.dumps(value, separators=(", ", ": "))


def _tls_block(tls: TlsConfig, *, verify: bool) -> str:
    items = [f"cert_file: {_q(str(tls.cert_file))}", f"key_file: {_q(str(tls.key_file))}"]
    if tls.ca_file is not None:
        items.append(f"ca_file: {_q(str(tls.ca_file))}")
    if verify:
        items.append("verify: true")
    items.append("timeout: 2")
    return "{\n  " + "\n  ".join(items) + "\n}"


def _cluster_block(cluster: ClusterConfig, tls: TlsConfig | None, port: int) -> str:
    items = [f"name: {_q(cluster.name)}", f"listen: {_q(_hostport(cluster.host, port))}"]
    if cluster.routes:
        items.append("routes: [" + ", ".join(_q(r) for r in cluster.routes) + "]")
    if tls is not None and tls.ca_file is not None:
        items.append("tls " + _tls_block(tls, verify=True).replace("\n", "\n  "))
    return "cluster {\n  " + "\n  ".join(items) + "\n}"


def routes_for(urls: Sequence[str]) -> tuple[str, ...]:
    """Cluster URLs as route URLs (`nats://h:p` -> `nats-route://h:p`)."""
    return tuple("nats-route://" + u.split("://", 1)[-1] for u in urls)


__all__ = [
    "DEFAULT_DATA_BUCKET",
    "DEFAULT_MARKET_BUCKET",
    "DEFAULT_MARKET_TTL_S",
    "DEFAULT_OBJECT_BUCKETS",
    "HEADER_ROOM",
    "ClusterConfig",
    "HubConfig",
    "did_of_market_key",
    "is_loopback",
    "market_key",
    "market_subjects",
    "render",
    "routes_for",
]
