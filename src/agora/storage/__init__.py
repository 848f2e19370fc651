"""Storage for job inputs and outputs: content-addressed stores, plus the fetchers for inputs.

Files:
  interfaces.py  `Storage` (the async interface every store implements) and `ContentRef`
  integrity.py   hashing and `VerifiedFileWriter` (atomic, hashed, capped writes), used by all
  local.py       `LocalCAS`: the node's content-addressed store on disk (cas://sha256/<hex>)
  s3.py          `S3Storage`: any S3-compatible server through boto3 (s3://bucket/<prefix>/sha256/<hex>)
  hub.py         `HubObjectStore`: the hub's NATS JetStream object store, small results (hub://bucket/<hex>)
  http.py        `HttpFetcher`: HTTP(S) inputs, streamed with a size cap and optional sha256
  inline.py      `decode_inline`: inline inputs written in the job spec (text or base64)
  staging.py     `fetch_inputs` (all-or-nothing, read-only) and `collect_outputs` for a task's work dir

Every `Storage` passes the conformance suite in tests/integration/storage/conformance.py.
"""

from agora.storage.http import HttpFetcher
from agora.storage.hub import HubObjectStore
from agora.storage.inline import decode_inline, encode_inline
from agora.storage.interfaces import ContentRef, Storage, parse_s3_uri
from agora.storage.local import LocalCAS
from agora.storage.staging import (
    FetchedInput,
    InputSource,
    InputSpec,
    InputSpecLike,
    OutputRef,
    Storages,
    collect_outputs,
    fetch_inputs,
    remove_inputs,
    remove_tree,
)

__all__ = [
    "ContentRef",
    "FetchedInput",
    "HttpFetcher",
    "HubObjectStore",
    "InputSource",
    "InputSpec",
    "InputSpecLike",
    "LocalCAS",
    "OutputRef",
    "S3Storage",
    "Storage",
    "Storages",
    "collect_outputs",
    "decode_inline",
    "encode_inline",
    "fetch_inputs",
    "parse_s3_uri",
    "remove_inputs",
    "remove_tree",
]


def __getattr__(name: str) -> object:
    """`S3Storage` is imported on first use: boto3 costs a node ~0.2 s of start-up it may never need."""
    if name == "S3Storage":
        from agora.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
