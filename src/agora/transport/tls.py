"""TLS settings shared by the hub (server side) and the NATS transport (client side).

Only file paths live here, never key material: the hub writes them into its config file and the
client loads them into an `ssl.SSLContext`, so secrets never appear on a command line or in logs.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from agora.errors import AgoraError


@dataclass(frozen=True)
class TlsConfig:
    """Certificate files.

    Hub: `cert_file` + `key_file` are its certificate; with `ca_file` and `verify_clients` it also
    demands client certificates signed by that CA. Node: `ca_file` is what it trusts for the hub's
    certificate (the system store when absent); `cert_file` + `key_file` are its client certificate.
    `server_name` overrides the host name checked against the hub's certificate.
    """

    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    verify_clients: bool = False
    server_name: str | None = None

    def check_files(self, *, server: bool) -> None:
        if server and (self.cert_file is None or self.key_file is None):
            raise AgoraError("config_invalid", "a hub with TLS needs tls.cert_file and tls.key_file")
        if (self.cert_file is None) != (self.key_file is None):
            raise AgoraError("config_invalid", "tls.cert_file and tls.key_file go together")
        if self.verify_clients and self.ca_file is None:
            raise AgoraError("config_invalid", "tls.verify_clients needs tls.ca_file to check client certificates")
        for name in ("cert_file", "key_file", "ca_file"):
            path = getattr(self, name)
            if path is None:
                continue
            text = str(path)
            if any(c in text for c in '"\n\r\\'):
                raise AgoraError("config_invalid", f"tls.{name} must not contain quotes, backslashes or newlines")
            if not Path(path).is_file():
                raise AgoraError("config_invalid", f"tls.{name} {text!r} is not a readable file")

    def client_context(self) -> ssl.SSLContext:
        """The context a node dials the hub with: hostname checked, TLS 1.2 at least."""
        self.check_files(server=False)
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.cert_file is not None and self.key_file is not None:
                ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (ssl.SSLError, OSError) as exc:
            raise AgoraError("config_invalid", f"TLS files could not be loaded: {exc}") from None
        return ctx


__all__ = ["TlsConfig"]
