"""Node configuration: every setting has a visible default, and bad values fail at start with a hint."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from agora.errors import AgoraError
from agora.transport import ClusterConfig, TlsConfig
from agora.transport import HubConfig as HubProcessConfig

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_HUB_BUCKET = "agora-results"  # agora.storage.hub.DEFAULT_BUCKET; an allowlisted hub creates it
DEFAULT_HUB_MAX_OBJECT_BYTES = 8 * 1024 * 1024
_HUB_BUCKET_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_S3_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
S3_FLAGS_HINT = "Example: --s3-endpoint http://127.0.0.1:8333 --s3-bucket results [--s3-region us-east-1]"


def default_home() -> Path:
    return Path(os.environ.get("AGORA_HOME", Path.home() / ".agora"))


@dataclass
class HubSettings:
    """Settings of the embedded hub (nats-server) when this node is a hub."""

    host: str = "127.0.0.1"
    port: int = 4222
    cluster_port: int | None = None
    routes: list[str] = field(default_factory=list)
    allow: list[str] = field(default_factory=list)  # empty: open hub; else DIDs allowed to connect
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None


@dataclass
class NodeConfig:
    home: Path = field(default_factory=default_home)
    hubs: list[str] = field(default_factory=list)  # nats://host:port URLs this node dials out to
    hub: HubSettings | None = None  # set: this node also runs a hub
    api_host: str = "127.0.0.1"
    api_port: int = 8765  # 0: pick a free port
    api_socket: Path | None = None  # serve the API on a unix socket instead of TCP
    announce_interval: float = 5.0
    lost_after: float = 15.0
    expire_after: float = 60.0
    request_timeout: float = 5.0
    max_message_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    tls_ca: str | None = None  # CA to trust when a hub URL is tls://
    # HTTP(S) inputs (and wasm modules by URL) may come from loopback, private and link-local addresses.
    # Off: a requester's URL must not reach into the provider's own network (SSRF). On: inputs on a LAN.
    allow_private_inputs: bool = False
    allow_task_network: bool = False  # process tasks asking for a network get the host's (see executors)
    # Off: a process task cannot create user namespaces in its sandbox (no `unshare -r`, no namespaced root)
    allow_task_userns: bool = False
    # Output files one task may leave (each is listed in its signed receipt; the wire allows 4096)
    max_output_files: int = 1000
    # Each requester's share of this node's store (uploads, modules, outputs), in bytes; 0: no bound
    requester_store_quota_bytes: int = 10 * 1024**3
    # How long an upload or an output stays in the store (an output fetched to its end: 5 more minutes)
    store_retention_s: float = 7 * 24 * 3600.0
    # The hub's JetStream object store, for outputs published `{type: hub}` and `hub` inputs
    hub_bucket: str = DEFAULT_HUB_BUCKET
    hub_max_object_bytes: int = DEFAULT_HUB_MAX_OBJECT_BYTES  # bigger results belong in S3
    # The operator's S3 store (any S3-compatible server) for `s3` outputs and inputs; off unless s3_bucket is
    # set. Jobs may use this bucket only. Credentials: these, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    s3_endpoint: str | None = None  # None: AWS itself
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: str | None = field(default=None, repr=False)
    s3_secret_key: str | None = field(default=None, repr=False)

    def validate(self) -> None:
        if self.api_socket is None and self.api_host not in LOOPBACK_HOSTS:
            raise AgoraError(
                "config_invalid",
                f"api_host {self.api_host!r} is not a loopback address",
                hint="The local API only serves this machine: use 127.0.0.1 or --api-socket PATH.",
            )
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
        self._validate_storage()
        self._validate_provider_limits()

    def _validate_provider_limits(self) -> None:
        if isinstance(self.max_output_files, bool) or not (
            isinstance(self.max_output_files, int) and 1 <= self.max_output_files <= 4096
        ):
            raise AgoraError("config_invalid", f"max_output_files must be 1 to 4096, got {self.max_output_files!r}")
        quota = self.requester_store_quota_bytes
        if isinstance(quota, bool) or not isinstance(quota, int) or quota < 0:
            raise AgoraError("config_invalid", f"requester_store_quota_bytes must be >= 0 (0: no bound), got {quota!r}")
        retention = self.store_retention_s
        if isinstance(retention, bool) or not isinstance(retention, int | float) or not retention > 0:
            raise AgoraError("config_invalid", f"store_retention_s must be a positive number, got {retention!r}")

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
            tls=tls,
            object_buckets=tuple(dict.fromkeys([DEFAULT_HUB_BUCKET, self.hub_bucket])),
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
]
