"""Getting a finished task's outputs onto the requester's disk: from where they were published, or the provider.

A provider keeps every output in its own store and serves it over `/agora/alloc/fetch`; an output the
spec publishes to the hub's object store or to S3 is also put there, and the status names its URI
(`hub://<bucket>/<sha256>`, `s3://<bucket>/<key>`). The requester reads such an output from that store
when it can (`PublishedOutputs`, the node's storage backends) — no provider round trips per chunk, and
the provider may be gone by then — and falls back to the provider otherwise. Whichever way, the bytes
must have the SHA-256 and size the provider signed in its usage receipt, or the output is refused
(`storage_integrity`) and nothing is left at the destination.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from agora.errors import AgoraError
from agora.orchestrator.provider import ProviderLink
from agora.wire import OutputDigest

log = logging.getLogger("agora.orchestrator")


class PublishedOutputs(Protocol):
    """What the runner needs of the node's storage backends (agora.compute.NodeStores has it)."""

    def can_download(self, uri: str) -> bool: ...

    async def download(self, uri: str, sha256: str, size: int, dest: Path) -> str:
        """Fetch to `dest`, verified against sha256 and size; returns the backend's name (hub, s3)."""
        ...


async def fetch_output(
    link: ProviderLink,
    published: PublishedOutputs | None,
    alloc_id: str,
    out: OutputDigest,
    uri: str | None,
    dest: Path,
) -> tuple[str, AgoraError | None]:
    """Download one output; returns where it came from (hub | s3 | provider) and, when the published
    copy could not be used, why (the provider's copy was taken instead)."""
    problem: AgoraError | None = None
    if uri and published is not None and published.can_download(uri):
        try:
            return await published.download(uri, out.sha256, out.size, dest), None
        except AgoraError as err:
            problem = err
            log.warning("output %s: %s unusable (%s: %s); fetching it from the provider", out.path, uri, err.code, err)
    await link.fetch_to(alloc_id, out.sha256, out.size, dest)
    return "provider", problem


__all__ = ["PublishedOutputs", "fetch_output"]
