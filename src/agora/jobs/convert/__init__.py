"""Converters from other schedulers' job files to agora job specs, with warnings for what is lost.

- `common.py`: `ConvertResult`, the `Fields` tracker (every unmapped field becomes a warning), helpers.
- `kubernetes.py`: Kubernetes Job and Pod (YAML or JSON).
- `nomad.py`, `nomad_blocks.py`: Nomad jobs in HCL (python-hcl2) and the API's JSON format.
- `bacalhau.py`: Bacalhau v1 jobs (YAML or JSON, case-insensitive keys).

Every result is validated by `agora.jobs.parse_job`, so a converted spec is a valid spec.
"""

from __future__ import annotations

from collections.abc import Callable

from agora.errors import AgoraError
from agora.jobs.convert.bacalhau import convert_bacalhau
from agora.jobs.convert.common import ConvertResult
from agora.jobs.convert.kubernetes import convert_kubernetes
from agora.jobs.convert.nomad import convert_nomad

CONVERTERS: dict[str, Callable[[str | bytes, str | None], ConvertResult]] = {
    "kubernetes": convert_kubernetes,
    "nomad": convert_nomad,
    "bacalhau": convert_bacalhau,
}
_ALIASES = {"k8s": "kubernetes", "kube": "kubernetes"}


def convert(text: str | bytes, source: str, fmt: str | None = None) -> ConvertResult:
    """Convert `text` from `source` ("kubernetes", "nomad" or "bacalhau").

    `fmt` is "yaml" or "json" (Kubernetes, Bacalhau) or "hcl" or "json" (Nomad); None guesses from
    the text. Raises `convert_unknown_engine`, `convert_unsupported_kind`, `convert_parse_failed`, or
    `job_spec_invalid` when the converted values are not valid in agora.
    """
    name = _ALIASES.get(source.lower(), source.lower()) if isinstance(source, str) else ""
    converter = CONVERTERS.get(name)
    if converter is None:
        raise AgoraError(
            "convert_unknown_engine",
            f"cannot convert from {source!r}: supported are {', '.join(CONVERTERS)}",
        )
    return converter(text, fmt)


__all__ = ["CONVERTERS", "ConvertResult", "convert", "convert_bacalhau", "convert_kubernetes", "convert_nomad"]
