"""Units: Kubernetes-style quantities for bytes and CPU, and durations, parsed into integers.

Each parser returns an `int` in the base unit (bytes, millicores, seconds) or raises `ValueError`
with a short reason; the spec parser turns that into a field error. Fractions that do not land on a
whole base unit round *up* (as Kubernetes does), so a request is never silently shrunk.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BYTE_UNITS: dict[str, int] = {
    "": 1,
    "B": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "PB": 10**15,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
    "Pi": 1 << 50,
    "Ei": 1 << 60,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "TiB": 1 << 40,
    "PiB": 1 << 50,
}
# Case-insensitive spellings seen in other schedulers' files ("1Gb", "500mb", "2gib"): SI vs binary kept.
_BYTE_UNITS_LOOSE: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "p": 10**15,
    "pb": 10**15,
    "ki": 1 << 10,
    "kib": 1 << 10,
    "mi": 1 << 20,
    "mib": 1 << 20,
    "gi": 1 << 30,
    "gib": 1 << 30,
    "ti": 1 << 40,
    "tib": 1 << 40,
    "pi": 1 << 50,
    "pib": 1 << 50,
}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")
_EXPONENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE]([+-]?[0-9]{1,2})\s*$")  # Kubernetes' 129e6
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600), "d": Decimal(86400)}

MAX_BYTES = 1 << 62  # anything above is a typo, and it keeps values inside a signed 64-bit int


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ceil(d: Decimal) -> int:
    return int(d.to_integral_value(rounding="ROUND_CEILING"))


def _finite(value: float) -> Decimal:
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def parse_bytes(value: object, *, loose: bool = False) -> int:
    """An amount of bytes: an int, or a string like "512Mi", "1G", "1.5Gi", "300MB" ("1Gb" with loose)."""
    if _is_number(value):
        amount = _finite(value)  # type: ignore[arg-type]
        unit = 1
    elif isinstance(value, str) and (e := _EXPONENT.match(value)):
        amount, unit = Decimal(e.group(1)) * Decimal(10) ** int(e.group(2)), 1
    elif isinstance(value, str):
        m = _NUMBER_UNIT.match(value)
        if not m:
            raise ValueError("not a quantity")
        table = _BYTE_UNITS_LOOSE if loose else _BYTE_UNITS
        suffix = m.group(2).lower() if loose else m.group(2)
        if suffix not in table:
            raise ValueError(f"unknown unit {m.group(2)!r}")
        amount, unit = Decimal(m.group(1)), table[suffix]
    else:
        raise ValueError("not a quantity")
    result = _ceil(amount * unit)
    if result < 0 or result > MAX_BYTES:
        raise ValueError("out of range")
    return result


def parse_cpu(value: object) -> int:
    """CPU in millicores: cores as a number (1, 0.5) or a string ("2", "0.25", "500m")."""
    if _is_number(value):
        cores = _finite(value)  # type: ignore[arg-type]
        milli = cores * 1000
    elif isinstance(value, str):
        m = _NUMBER_UNIT.match(value)
        if not m or m.group(2) not in ("", "m"):
            raise ValueError("not a cpu quantity")
        n = Decimal(m.group(1))
        milli = n if m.group(2) == "m" else n * 1000
    else:
        raise ValueError("not a cpu quantity")
    result = _ceil(milli)
    if result <= 0:
        raise ValueError("must be more than 0")
    if result > 1_000_000_000:
        raise ValueError("out of range")
    return result


def parse_duration(value: object) -> int:
    """Whole seconds: an int (or integral float), a digit string, or "30s", "5m", "1h30m", "2d", "1500ms"."""
    if _is_number(value):
        d = _finite(value)  # type: ignore[arg-type]
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[0-9]+", text):
            d = Decimal(text)
        else:
            pos, d = 0, Decimal(0)
            for m in _DURATION_PART.finditer(text):
                if m.start() != pos:
                    raise ValueError("not a duration")
                d += Decimal(m.group(1)) * _DURATION_UNITS[m.group(2)]
                pos = m.end()
            if pos != len(text) or not text:
                raise ValueError("not a duration")
    else:
        raise ValueError("not a duration")
    try:
        if d != d.to_integral_value():
            raise ValueError("must be whole seconds")
    except InvalidOperation as exc:  # pragma: no cover - Decimal from validated text
        raise ValueError("not a duration") from exc
    if d < 0:
        raise ValueError("must not be negative")
    if d > 10**10:
        raise ValueError("out of range")
    return int(d)


def format_bytes(n: int) -> str:
    """The shortest exact binary form ("512Mi", "1Gi") or plain bytes; used in messages and docs."""
    for suffix, size in (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    if n and n % 1024 == 0:
        return f"{n // 1024}Ki"
    return str(n)


__all__ = ["MAX_BYTES", "format_bytes", "parse_bytes", "parse_cpu", "parse_duration"]
