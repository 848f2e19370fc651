"""Node configuration: every setting has a visible default, and bad values fail at start with a hint."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from agora.actor import AdmissionSettings
from agora.compute import ComputeSettings, StoreLimits
from agora.compute.advertiser import AdvertiserSettings
from agora.compute.bidder import BidderSettings
from agora.errors import AgoraError
from agora.ledger.service import LedgerSettings
from agora.ledger.trust import TrustSettings
from agora.node.settings import setting, setting_factory
from agora.orchestrator import RunnerSettings
from agora.orchestrator.placement import PlacementSettings
from agora.transport import ClusterConfig, TlsConfig
from agora.transport import HubConfig as HubProcessConfig

DEFAULT_REQUESTER_QUOTA = 10 * 1024**3  # each requester's share of a provider's store
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_HUB_BUCKET = "agora-results"  # agora.storage.hub.DEFAULT_BUCKET; an allowlisted hub creates it
DEFAULT_HUB_MAX_OBJECT_BYTES = 8 * 1024 * 1024
_HUB_BUCKET_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_S3_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
BenchmarkMode = Literal["on", "off", "quick"]
SettlementMode = Literal["hub", "none", "local"]
S3_FLAGS_HINT = "Example: --s3-endpoint http://127.0.0.1:8333 --s3-bucket results [--s3-region us-east-1]"


def loopback_address(host: str) -> str:
    """The address the local API binds for `host`: the name is resolved, and every address it resolves to must
    be loopback (a `localhost` that /etc/hosts points at a LAN address is refused). IPv4 first."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AgoraError(
            "config_invalid", f"api_host {host!r} does not resolve: {exc}", hint="Use 127.0.0.1 or --api-socket PATH."
        ) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    remote = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    if remote or not addresses:
        raise AgoraError(
            "config_invalid",
            f"api_host {host!r} is not a loopback address (it resolves to {', '.join(remote) or 'nothing'})",
            hint="The local API only serves this machine: use 127.0.0.1 or --api-socket PATH.",
        )
    return sorted(addresses, key=lambda a: ":" in a)[0]


def default_home() -> Path:
    """~/.agora. `AGORA_HOME` is the `home` setting's environment name: the loader reads it, not this."""
    return Path.home() / ".agora"


@dataclass
class HubSettings:
    """Settings of the embedded hub (nats-server) when this node is a hub (`--hub`)."""

    host: str = setting("127.0.0.1", help="address the hub listens on; beyond loopback needs TLS")
    port: int = setting(4222, help="NATS port nodes dial (0: pick a free one)")
    cluster_port: int | None = setting(None, flag="--cluster-port", help="port for routes from other hubs")
    routes: list[str] = setting_factory(list, flag="--route", help="cluster route to another hub")
    allow: list[str] = setting_factory(list, flag="--allow", help="DID allowed to connect (default: an open hub)")
    tls_cert: str | None = setting(None, flag="--tls-cert", help="the hub's TLS certificate (PEM)")
    tls_key: str | None = setting(None, flag="--tls-key", help="the hub's TLS key (PEM)")
    tls_ca: str | None = setting(None, help="CA of the hub's TLS (default: --tls-ca)", derive=lambda c: c.tls_ca)


@dataclass
class NodeConfig:
    """The node's settings. Adding one: add a field here (see src/agora/node/README.md); its daemon flag, its
    `AGORA_*` environment name and its place in `agora node up` derive from it (`agora.node.settings`)."""

    home: Path = setting_factory(default_home, help="node home: identity, database, run file (default ~/.agora)")
    # nats://host:port URLs this node dials out to
    hubs: list[str] = setting_factory(list, flag="--hub-url", help="hub URL to dial (nats:// or tls://)")
    hub: HubSettings | None = setting(None, help="also run a hub (embedded nats-server)")  # set: this node is a hub
    api_host: str = setting("127.0.0.1", group="api", help="address of the local API (must resolve to loopback)")
    api_port: int = setting(8765, group="api", help="local API port (0: pick a free one)")
    api_socket: Path | None = setting(None, group="api", help="serve the API on this unix socket instead of TCP")
    # The TCP API asks for the token in `api.token` (0600, in the home): other users of a shared machine cannot
    # drive the node. A unix socket (0600) needs none.
    require_api_token: bool = setting(
        False, group="api", help="the TCP API asks for the token the node writes in HOME/api.token (0600)"
    )
    announce_interval: float = setting(5.0, group="discovery", help="seconds between announcements")
    lost_after: float = setting(
        15.0,
        group="discovery",
        help="a silent peer that announces no interval of its own (an older node) is lost after "
        "(default 3 x announce interval); the others after 3 of their own",
        derive=lambda c: 3 * c.announce_interval,
    )
    expire_after: float = setting(
        60.0,
        group="discovery",
        help="a lost peer is forgotten after (default 12 x announce interval)",
        derive=lambda c: 12 * c.announce_interval,
    )
    request_timeout: float = setting(5.0, help="default timeout of a call to another node (s)")
    # DIDs the peer table always keeps and whose events are never rate-limited (docs/operators.md, discovery)
    pinned_peers: list[str] = setting_factory(
        list, group="discovery", flag="--pin-peer", help="DID the peer table always keeps (repeat)"
    )
    max_message_bytes: int = setting(1024 * 1024, help="largest message sent or accepted")
    log_level: str = setting("INFO", help="log level: DEBUG, INFO, WARNING or ERROR")
    otlp_endpoint: str = setting(
        "", help="send OpenTelemetry traces to this OTLP/HTTP endpoint (needs agora[tracing]); empty: no tracing"
    )
    tls_ca: str | None = setting(None, help="CA certificate to trust for tls:// hubs")
    # Unlocks a passphrase-protected identity.json. Environment only: a flag would show in `ps`.
    passphrase: str | None = setting(None, secret=True, help="passphrase of the keystore")
    # HTTP(S) inputs (and wasm modules by URL) may come from loopback, private and link-local addresses.
    # Off: a requester's URL must not reach into the provider's own network (SSRF). On: inputs on a LAN.
    allow_private_inputs: bool = setting(
        False,
        group="compute",
        help="fetch HTTP(S) inputs from loopback, private and link-local addresses too (off: SSRF protection)",
    )
    allow_task_network: bool = setting(
        False,
        group="compute",
        help="give process tasks that ask for a network the host's network (they can reach local services)",
    )
    # Off: a process task cannot create user namespaces in its sandbox (no `unshare -r`, no namespaced root)
    allow_task_userns: bool = setting(
        False, group="compute", help="let process tasks create user namespaces in their sandbox (off: refused)"
    )
    # on: load or run the onboarding benchmark; off: never (tests, a node that must not spend the CPU);
    # quick: a shorter, noisier run (devnets on small machines)
    benchmark: BenchmarkMode = setting("on", group="compute", help="onboarding benchmark")
    # provider side: allocations, their logs and outputs, each requester's store quota and retention (10 GiB, 7 days)
    compute: ComputeSettings = setting_factory(
        lambda: ComputeSettings(store=StoreLimits(quota_bytes=DEFAULT_REQUESTER_QUOTA)),
        help="provider side: allocations, logs, outputs, each requester's share of the store",
    )
    runner: RunnerSettings = setting_factory(RunnerSettings, help="requester side: jobs this node submits")
    placement: PlacementSettings = setting_factory(
        PlacementSettings, help="requester side of the market: bids asked, bid and award deadlines, queue deadline"
    )
    trust: TrustSettings = setting_factory(
        TrustSettings, help="requester's view of providers: prior, decay half-life, failure penalty and cooldown"
    )
    # the provider's side of the market (compute/bidder.py, docs/market.md "The provider")
    sell: bool = setting(
        False, group="market", help="sell this machine: publish a default offer at start (the machine minus a reserve)"
    )
    # requester side: where the money of its market contracts moves (orchestrator/settle.py, docs/marketplace.md).
    # hub: the hub's ledger (node/ledger.py, RemoteSettlement): every market placement locks, releases or refunds
    # there (the default: a market job is a contract that pays); none: every contract and its timeline is kept,
    # nothing is locked or paid; local: an internal ledger in this node's home (ledger.db), this node its operator
    settlement: SettlementMode = setting(
        "hub",
        group="market",
        choices=("hub", "none", "local"),
        help="where market contracts settle: hub (its ledger), none (timelines only) or local (a ledger here)",
    )
    inference_payment: str = setting(
        "pay_after",
        group="market",
        choices=("pay_after", "pay_before"),
        help="how this node pays for inference: pay_after (the verified record's price) or pay_before (escrow)",
    )
    inference_router: str = setting(
        "",
        group="market",
        help="the DID of a hub that routes this node's inference requests (empty: route them here)",
    )
    bidder: BidderSettings = setting_factory(
        BidderSettings,
        help="provider side of the market: bid validity, start window, refused and rate-limited requesters",
    )
    ads: AdvertiserSettings = setting_factory(
        AdvertiserSettings, help="this node's capacity ad in the hub's market index (docs/market.md)"
    )
    admission: AdmissionSettings = setting_factory(
        AdmissionSettings, help="replay-cache shares and public-call rate limits (docs/protocol.md)"
    )
    # The hub's JetStream object store, for outputs published `{type: hub}` and `hub` inputs
    hub_bucket: str = setting(DEFAULT_HUB_BUCKET, group="storage", help="bucket of the hub's object store")
    hub_max_object_bytes: int = setting(
        DEFAULT_HUB_MAX_OBJECT_BYTES, group="storage", help="largest object in the hub's store (more: use S3)"
    )
    # The operator's S3 store (any S3-compatible server) for `s3` outputs and inputs; off unless s3_bucket is
    # set. Jobs may use this bucket only. Credentials: these, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    s3_endpoint: str | None = setting(
        None, group="storage", help="S3-compatible server URL for jobs' s3 outputs/inputs (default: AWS itself)"
    )
    s3_bucket: str | None = setting(None, group="storage", help="the bucket jobs may use (setting it turns S3 on)")
    s3_region: str = setting("us-east-1", group="storage", help="S3 region")
    s3_access_key: str | None = setting(None, secret=True, group="storage", help="S3 access key")
    s3_secret_key: str | None = setting(None, secret=True, group="storage", help="S3 secret key")
    # Money (docs/ledger.md): a hub serves the ledger for its members; every node settles through its hub's
    ledger: LedgerSettings = setting_factory(
        LedgerSettings, help="the ledger: a hub serves it (serve, operators); a node names its hubs (hubs)"
    )

    def validate(self) -> None:
        if self.api_socket is None:
            loopback_address(self.api_host)
        if not 0 <= self.api_port <= 65535:
            raise AgoraError("config_invalid", f"api_port {self.api_port} is out of range")
        for url in self.hubs:
            if not url.startswith(("nats://", "tls://")):
                raise AgoraError(
                    "config_invalid",
                    f"hub URL {url!r} must start with nats:// or tls://",
                    hint="Example: --hub nats://127.0.0.1:4222",
                )
        if not self.hubs and self.hub is None:
            raise AgoraError(
                "config_invalid",
                "a node needs at least one hub to dial, or must be a hub itself",
                hint="Pass --hub nats://HOST:PORT, or run `agora hub up`.",
            )
        if self.announce_interval <= 0 or self.lost_after <= self.announce_interval:
            raise AgoraError("config_invalid", "lost_after must be longer than announce_interval")
        if self.benchmark not in get_args(BenchmarkMode):
            raise AgoraError("config_invalid", f"benchmark {self.benchmark!r}: expected on, off or quick")
        if self.settlement not in get_args(SettlementMode):
            raise AgoraError("config_invalid", f"settlement {self.settlement!r}: expected hub, none or local")
        self._validate_storage()
        self._validate_provider_limits()

    def _validate_provider_limits(self) -> None:
        files = self.compute.max_output_files
        if isinstance(files, bool) or not (isinstance(files, int) and 1 <= files <= 4096):
            raise AgoraError("config_invalid", f"compute.max_output_files must be 1 to 4096, got {files!r}")
        quota = self.compute.store.quota_bytes
        if isinstance(quota, bool) or not isinstance(quota, int) or quota < 0:
            raise AgoraError("config_invalid", f"compute.store.quota_bytes must be >= 0 (0: no bound), got {quota!r}")
        retention = self.compute.store.retention_s
        if isinstance(retention, bool) or not isinstance(retention, int | float) or not retention > 0:
            raise AgoraError("config_invalid", f"compute.store.retention_s must be > 0, got {retention!r}")
        b = self.bidder
        for name in ("bid_valid_s", "start_window_s", "max_bids"):
            v = getattr(b, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise AgoraError("config_invalid", f"bidder.{name} must be a positive integer, got {v!r}")
        if isinstance(b.rate_per_min, bool) or not isinstance(b.rate_per_min, int) or b.rate_per_min < 0:
            raise AgoraError(
                "config_invalid", f"bidder.rate_per_min must be >= 0 (0: no limit), got {b.rate_per_min!r}"
            )
        bad = [d for d in b.refuse if not (isinstance(d, str) and d.startswith("did:"))]
        if bad:
            raise AgoraError("config_invalid", f"bidder.refuse lists DIDs, got {bad[0]!r}")

    def _validate_storage(self) -> None:
        if not isinstance(self.hub_bucket, str) or not _HUB_BUCKET_RE.fullmatch(self.hub_bucket):
            raise AgoraError("config_invalid", f"hub_bucket {self.hub_bucket!r}: 1-64 letters, digits, '-' or '_'")
        if isinstance(self.hub_max_object_bytes, bool) or not (
            isinstance(self.hub_max_object_bytes, int) and self.hub_max_object_bytes > 0
        ):
            raise AgoraError(
                "config_invalid", f"hub_max_object_bytes must be a positive integer, got {self.hub_max_object_bytes!r}"
            )
        if self.s3_endpoint is not None and not self.s3_endpoint.startswith(("http://", "https://")):
            raise AgoraError(
                "config_invalid", f"s3_endpoint {self.s3_endpoint!r} must be an http(s) URL", hint=S3_FLAGS_HINT
            )
        if self.s3_bucket is None:
            if self.s3_endpoint is not None:
                raise AgoraError(
                    "config_invalid", "s3_endpoint is set but s3_bucket is not: S3 needs a bucket", hint=S3_FLAGS_HINT
                )
            return
        if not _S3_BUCKET_RE.fullmatch(self.s3_bucket):
            raise AgoraError(
                "config_invalid", f"s3_bucket {self.s3_bucket!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)"
            )
        if not self.s3_region or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.s3_region):
            raise AgoraError("config_invalid", f"s3_region {self.s3_region!r} is not a region name like us-east-1")
        if (self.s3_access_key is None) != (self.s3_secret_key is None):
            raise AgoraError(
                "config_invalid",
                "s3_access_key and s3_secret_key go together",
                hint="Set both, or neither (then AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are used).",
            )

    def s3_credentials(self) -> tuple[str | None, str | None]:
        """The configured keys, else the standard environment variables, else (None, None): boto3's own chain."""
        if self.s3_access_key is not None:
            return self.s3_access_key, self.s3_secret_key
        return os.environ.get("AWS_ACCESS_KEY_ID") or None, os.environ.get("AWS_SECRET_ACCESS_KEY") or None

    def hub_process_config(self, own_did: str) -> HubProcessConfig:
        """The embedded nats-server's settings (validated by the transport layer). An allowlist always
        admits the hub's own node: it dials its own hub like every other node."""
        assert self.hub is not None
        h = self.hub
        cluster = None
        if h.cluster_port is not None or h.routes:
            cluster = ClusterConfig(host=h.host, port=h.cluster_port or 0, routes=tuple(h.routes))
        tls = None
        if h.tls_cert or h.tls_key:
            tls = TlsConfig(
                cert_file=Path(h.tls_cert) if h.tls_cert else None,
                key_file=Path(h.tls_key) if h.tls_key else None,
                ca_file=Path(h.tls_ca) if h.tls_ca else None,
            )
        return HubProcessConfig(
            home=self.home / "hub",
            host=h.host,
            port=h.port,
            max_payload=self.max_message_bytes + 64 * 1024,
            cluster=cluster,
            allowed_dids=tuple(dict.fromkeys([own_did, *h.allow])) if h.allow else None,
            # the hub node writes its ledger journal, a stream no member may touch
            admin_dids=(own_did,) if h.allow and self.ledger.serve else (),
            tls=tls,
            object_buckets=tuple(dict.fromkeys([DEFAULT_HUB_BUCKET, self.hub_bucket])),
            market_bucket=self.ads.bucket,
            market_ttl_s=self.ads.ttl_s,
        )

    def client_tls(self) -> TlsConfig | None:
        """How this node trusts the hubs it dials: `tls_ca`; else, for its own TLS hub, that hub's CA or its
        certificate; else plain."""
        if self.tls_ca:
            return TlsConfig(ca_file=Path(self.tls_ca))
        if self.hub is None or not self.hub.tls_cert:
            return None
        return TlsConfig(ca_file=Path(self.hub.tls_ca or self.hub.tls_cert))

    @property
    def keystore_path(self) -> Path:
        return self.home / "identity.json"

    @property
    def db_path(self) -> Path:
        return self.home / "agora.db"

    @property
    def api_token_file(self) -> Path:
        """The TCP API's token (0600), written at each start when `require_api_token` is on; the CLI reads it."""
        return self.home / "api.token"

    @property
    def run_file(self) -> Path:
        """Written while the node runs: pid, DID and API address, so the CLI can find it."""
        return self.home / "run.json"


__all__ = [
    "DEFAULT_HUB_BUCKET",
    "DEFAULT_HUB_MAX_OBJECT_BYTES",
    "LOOPBACK_HOSTS",
    "HubSettings",
    "NodeConfig",
    "default_home",
    "loopback_address",
]
