"""HTTP(S) inputs: stream a URL to a file with a size cap, optional SHA-256 check and short timeouts.

HTTP is read-only here (inputs only): results go to a content-addressed store. The body is streamed
through `VerifiedFileWriter`, so memory stays at one chunk, the cap is enforced as bytes arrive (a
server that lies in Content-Length or sends forever is cut off), and a failed or mismatched download
leaves no file. Status codes map onto the storage codes: 404/410 -> input_missing, 401/403 ->
storage_auth_failed, 5xx and connection failures -> storage_unreachable (retryable).

Server-side request forgery. The URL is chosen by a requester but fetched by the provider's node, from
inside the provider's network. So, unless the operator opted in (`allow_private_inputs`), every hop:
- resolves the host once and refuses (`input_forbidden`) if ANY address is not public: loopback,
  private (RFC 1918, fc00::/7), link-local (169.254/16 with the cloud metadata service, fe80::/10),
  CGNAT 100.64/10, unspecified, multicast, reserved, or an IPv4-mapped/NAT64/6to4 form of those;
- connects to exactly an address that was checked: the URL's host is replaced by the IP, while the
  Host header and the TLS SNI and certificate check keep the name (httpcore's `sni_hostname`), so a
  DNS answer that changes between check and connect (rebinding) has nothing to change;
- follows redirects by hand, at most MAX_REDIRECTS, checking each new host the same way.
Proxies from the environment are ignored (`trust_env=False`): a proxy would resolve the name itself,
after the check, and reach whatever the name then pointed to.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path

import httpx

from agora.errors import AgoraError
from agora.storage.integrity import CHUNK, VerifiedFileWriter, sha256_bytes, too_large
from agora.storage.interfaces import check_sha256_hex

DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
"""1 GiB: inputs bigger than this belong in S3 (resumable, parallel) rather than one HTTP stream."""

MAX_REDIRECTS = 5
MAX_ADDRESSES = 4
"""A host with several (all checked) addresses is tried in resolver order, at most this many, on connect errors."""

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
"""(host, port) -> the addresses to check and connect to. Tests inject one; nodes use `system_resolver`."""
AddressPolicy = Callable[[IPAddress], str | None]
"""An address -> why it is refused, or None to allow it. Nodes use `forbidden_reason` (or allow all)."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})

_V4_RULES: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "an unspecified address ('this network')"),
        ("10.0.0.0/8", "a private address (RFC 1918)"),
        ("100.64.0.0/10", "a carrier-grade NAT address (RFC 6598)"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address (cloud metadata services answer there)"),
        ("172.16.0.0/12", "a private address (RFC 1918)"),
        ("192.0.0.0/24", "a reserved address (IETF protocol assignments)"),
        ("192.168.0.0/16", "a private address (RFC 1918)"),
        ("198.18.0.0/15", "a reserved address (benchmarking)"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),  # includes the broadcast address 255.255.255.255
    )
)
_V6_RULES: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), why)
    for net, why in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/8", "a reserved address (IPv4-compatible and others)"),
        ("100::/64", "a reserved address (discard)"),
        ("2001:db8::/32", "a reserved address (documentation)"),
        ("fc00::/7", "a private address (unique local, RFC 4193)"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address (deprecated)"),
        ("ff00::/8", "a multicast address"),
    )
)
_NAT64 = IPv6Network("64:ff9b::/96")


def _embedded_v4(ip: IPv6Address) -> tuple[IPv4Address, str] | None:
    """The IPv4 address an IPv6 form carries and routes to, if any (mapped, NAT64, 6to4)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why a provider must not connect to `ip` on a requester's behalf, or None for a public address.

    Pure. The explicit tables name the reason; Python's own flags catch what they list beyond them
    (documentation ranges and the like), so an address is allowed only if both agree it is public.
    """
    if isinstance(ip, IPv6Address):
        if ip.scope_id:
            ip = IPv6Address(str(ip).split("%", 1)[0])
        embedded = _embedded_v4(ip)
        if embedded is not None:  # it routes to that IPv4 address: judge that one
            inner = forbidden_reason(embedded[0])
            return None if inner is None else f"{inner}, in {embedded[1]} form"
        rules: Sequence[tuple[IPv4Network | IPv6Network, str]] = _V6_RULES
    else:
        rules = _V4_RULES
    for net, why in rules:
        if ip in net:
            return why
    if ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return "not a public address"
    if ip.is_private or ip.is_reserved:
        return "a private or reserved address"
    return None


def allow_any(ip: IPAddress) -> str | None:
    """The policy of a node whose operator opted in to private inputs (`--allow-private-inputs`)."""
    return None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for host, in its order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ip_address(sockaddr[0])
        if ip not in out:
            out.append(ip)
    return out


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def _check_url(url: str) -> httpx.URL:
    if not isinstance(url, str) or not (url.startswith("http://") or url.startswith("https://")):
        raise AgoraError("invalid_argument", f"an HTTP input needs an http:// or https:// URL, got {url!r}")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as e:
        raise AgoraError("invalid_argument", f"{url!r} is not a valid URL: {e}") from None
    if not parsed.raw_host:
        raise AgoraError("invalid_argument", f"{url!r} has no host")
    return parsed


def _status_error(url: str, status: int) -> AgoraError:
    if status in (404, 410):
        return AgoraError("input_missing", f"{url} answered {status}: not found")
    if status in (401, 403):
        return AgoraError("storage_auth_failed", f"{url} answered {status}: access refused")
    if status >= 500 or status == 429:
        return AgoraError("storage_unreachable", f"{url} answered {status}; the server is failing or busy")
    return AgoraError("input_missing", f"{url} answered {status}")


class HttpFetcher:
    """Downloads inputs over HTTP(S). One fetcher per node; it holds no connection between calls.

    `allow_private_inputs=False` (the default) refuses private and local addresses (see the module
    docstring); an operator whose inputs live on its own network opts in. `address_policy` and
    `resolver` replace the rules and the system resolver (tests: a name that resolves to a chosen
    loopback address, a policy that admits one test server); `verify` is httpx's TLS verification.
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        allow_private_inputs: bool = False,
        address_policy: AddressPolicy | None = None,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.max_bytes = max_bytes
        self.allow_private_inputs = allow_private_inputs
        self._policy: AddressPolicy = address_policy or (allow_any if allow_private_inputs else forbidden_reason)
        self._resolve: Resolver = resolver or system_resolver
        self._connect_timeout = connect_timeout
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        # identity encoding: the hash is of the bytes as published, and no decompression bomb slips past the cap
        self._headers = {"user-agent": "agora-node", "accept-encoding": "identity"} | (headers or {})
        self._verify = verify
        self._ssl: ssl.SSLContext | None = verify if isinstance(verify, ssl.SSLContext) else None

    async def fetch(self, url: str, *, expected_sha256: str | None = None, max_bytes: int | None = None) -> bytes:
        """Download into memory (small inputs); same checks as `fetch_to_file`."""
        _check_url(url)
        expected = check_sha256_hex(expected_sha256) if expected_sha256 else None
        cap = self.max_bytes if max_bytes is None else max_bytes
        parts: list[bytes] = []
        total = 0
        async with self._stream(url) as resp:
            self._check_length(url, resp, cap)
            async for chunk in self._chunks(url, resp):
                total += len(chunk)
                if total > cap:
                    raise too_large(url, cap)
                parts.append(chunk)
        data = b"".join(parts)
        if expected is not None:
            actual = sha256_bytes(data)
            if actual != expected:
                raise AgoraError(
                    "storage_integrity",
                    f"{url}: content hash is sha256:{actual}, expected sha256:{expected}",
                    details={"expected_sha256": expected, "actual_sha256": actual},
                )
        return data

    async def fetch_to_file(
        self, url: str, path: Path, *, expected_sha256: str | None = None, max_bytes: int | None = None
    ) -> tuple[str, int]:
        """Stream `url` to `path`; returns (sha256, size). `path` exists only if all checks passed."""
        _check_url(url)
        expected = check_sha256_hex(expected_sha256) if expected_sha256 else None
        cap = self.max_bytes if max_bytes is None else max_bytes
        async with self._stream(url) as resp:
            self._check_length(url, resp, cap)
            writer = await asyncio.to_thread(
                VerifiedFileWriter, path, expected_sha256=expected, max_bytes=cap, what=url
            )
            try:
                async for chunk in self._chunks(url, resp):
                    await asyncio.to_thread(writer.write, chunk)
                return await asyncio.to_thread(writer.commit)
            finally:
                await asyncio.to_thread(writer.abort)

    def _stream(self, url: str) -> _Download:
        return _Download(self, url)

    @staticmethod
    def _check_length(url: str, resp: httpx.Response, cap: int) -> None:
        length = resp.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise too_large(f"{url} ({length} bytes)", cap)

    @staticmethod
    def _chunks(url: str, resp: httpx.Response) -> _ChunkIter:
        return _ChunkIter(url, resp)

    # -- one hop: resolve, check, connect to the checked address ------------------------------------
    async def _addresses(self, hop: httpx.URL, url: str, redirected: bool) -> list[IPAddress]:
        """The checked addresses of the hop's host; input_forbidden if any of them is refused."""
        host = hop.raw_host.decode("ascii")  # IDNA form; an IPv6 literal comes without brackets
        literal = _ip_literal(host)
        addresses = [literal] if literal is not None else await self._lookup(host, hop, url)
        for ip in addresses:
            reason = self._policy(ip)
            if reason is not None:
                via = f"redirected to {hop}, " if redirected else ""
                named = f"{host} is" if str(ip) == host else f"{host} resolves to {ip},"
                raise AgoraError(
                    "input_forbidden",
                    f"{url}: {via}{named} {reason}; the provider does not fetch from private or local addresses",
                    details={"url": url, "hop": str(hop), "host": host, "address": str(ip), "reason": reason},
                )
        return addresses

    async def _lookup(self, host: str, hop: httpx.URL, url: str) -> list[IPAddress]:
        port = hop.port or (443 if hop.scheme == "https" else 80)
        try:
            addresses = list(await asyncio.wait_for(self._resolve(host, port), self._connect_timeout))
        except (OSError, TimeoutError) as e:
            raise AgoraError("storage_unreachable", f"{url}: could not resolve {host}: {e}") from None
        if not addresses:
            raise AgoraError("storage_unreachable", f"{url}: {host} has no addresses")
        return addresses

    async def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # loading the CA bundle takes a few ms of disk reads: once, off the loop
            self._ssl = await asyncio.to_thread(httpx.create_ssl_context, verify=self._verify)
        return self._ssl

    async def _get(
        self, hop: httpx.URL, addresses: Sequence[IPAddress], url: str, headers: dict[str, str]
    ) -> tuple[httpx.AsyncClient, httpx.Response]:
        """GET the hop from one of its checked addresses. A fresh client per hop: a pooled connection
        to the same address, opened with another name's TLS handshake, is never reused."""
        ctx = await self._ssl_context()
        extensions = {"sni_hostname": hop.raw_host.decode("ascii")} if hop.scheme == "https" else {}
        last: httpx.HTTPError | None = None
        for ip in addresses[:MAX_ADDRESSES]:
            client = httpx.AsyncClient(
                timeout=self._timeout, headers=headers, verify=ctx, trust_env=False, follow_redirects=False
            )
            try:
                request = client.build_request(
                    "GET",
                    hop.copy_with(host=str(ip)),
                    headers={"host": hop.netloc.decode("ascii")},
                    extensions=extensions,
                )
                return client, await client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                await client.aclose()
                last = e  # another checked address of the same host may answer
            except BaseException as e:
                await client.aclose()
                if isinstance(e, httpx.HTTPError):
                    raise _transport_error(url, e) from e
                if isinstance(e, httpx.InvalidURL):
                    raise AgoraError("invalid_argument", f"{url}: {e}") from e
                raise
        assert last is not None
        raise _transport_error(url, last) from last

    async def _open(self, url: str) -> tuple[httpx.AsyncClient, httpx.Response]:
        """Follow redirects by hand so that every hop's host is checked before it is contacted."""
        first = hop = _check_url(url)
        for n in range(MAX_REDIRECTS + 1):
            addresses = await self._addresses(hop, url, redirected=n > 0)
            same_origin = (hop.scheme, hop.raw_host, hop.port) == (first.scheme, first.raw_host, first.port)
            headers = (
                self._headers
                if same_origin
                else {k: v for k, v in self._headers.items() if k.lower() not in ("authorization", "cookie")}
            )
            client, resp = await self._get(hop, addresses, url, headers)
            location = resp.headers.get("location")
            if resp.status_code not in _REDIRECTS or location is None:
                return client, resp
            await resp.aclose()
            await client.aclose()
            try:
                hop = hop.join(location)
            except httpx.InvalidURL as e:
                raise AgoraError("invalid_argument", f"{url}: redirected to an invalid URL {location!r}: {e}") from None
            if hop.scheme not in ("http", "https") or not hop.raw_host:
                raise AgoraError("invalid_argument", f"{url}: redirected to {location!r}, which is not an http(s) URL")
        raise AgoraError("invalid_argument", f"{url}: more than {MAX_REDIRECTS} redirects")


class _Download:
    """Async context manager: open a streamed GET, map transport errors and bad statuses to codes."""

    def __init__(self, fetcher: HttpFetcher, url: str) -> None:
        self.url = url
        self._fetcher = fetcher
        self._client: httpx.AsyncClient | None = None
        self._resp: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        self._client, self._resp = await self._fetcher._open(self.url)
        if self._resp.status_code >= 300:  # a redirect without Location, or an error
            status = self._resp.status_code
            await self._close()
            raise _status_error(self.url, status)
        return self._resp

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._resp is not None:
            await self._resp.aclose()
        if self._client is not None:
            await self._client.aclose()


class _ChunkIter:
    def __init__(self, url: str, resp: httpx.Response) -> None:
        self._url = url
        self._it = resp.aiter_bytes(CHUNK)

    def __aiter__(self) -> _ChunkIter:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._it.__anext__()
        except httpx.HTTPError as e:
            raise _transport_error(self._url, e) from e


def _transport_error(url: str, e: httpx.HTTPError) -> AgoraError:
    if isinstance(e, httpx.TimeoutException):
        return AgoraError("storage_unreachable", f"{url}: timed out ({type(e).__name__})")
    if isinstance(e, httpx.UnsupportedProtocol):
        return AgoraError("invalid_argument", f"{url}: {e}")
    return AgoraError("storage_unreachable", f"{url}: {type(e).__name__}: {e}")


__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_REDIRECTS",
    "AddressPolicy",
    "HttpFetcher",
    "IPAddress",
    "Resolver",
    "allow_any",
    "forbidden_reason",
    "system_resolver",
]
