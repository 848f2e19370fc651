"""Reading Nomad jobs in both dialects with one code path: HCL (python-hcl2 output) and API JSON.

The two spell the same things differently (`restart` block vs `RestartPolicy` object, `"15s"` vs
nanoseconds, labeled blocks vs objects with `Name`), so every lookup passes both spellings and these
helpers hide the shape differences. Warning paths keep the file's own spelling.
"""

from __future__ import annotations

from typing import Any

from agora.jobs.convert.common import Fields, join
from agora.jobs.quantities import parse_duration
from agora.models.capability import normalize_arch

NS = 1_000_000_000
_ATTRS = {
    "attr.kernel.name": "os",
    "attr.cpu.arch": "arch",
    "node.class": "labels.node_class",
    "node.datacenter": "labels.datacenter",
    "node.region": "labels.region",
    "node.pool": "labels.node_pool",
}
_SUGAR_OPS = (
    "regexp",
    "version",
    "semver",
    "set_contains",
    "set_contains_any",
    "set_contains_all",
    "distinct_property",
)


def block(f: Fields, *names: str) -> Fields:
    """A single nested block: HCL gives a list of one mapping, the API a mapping."""
    key = next((n for n in names if f.key_of(n) is not None), names[0])
    value = f.take(*names)
    path = f.path_of(key)
    if isinstance(value, list):
        if len(value) > 1:
            f.warn.add(path, f"{len(value)} {key} blocks; only the first is used")
        value = value[0] if value else None
    return Fields(value, path, f.warn)


def blocks(f: Fields, *names: str) -> list[Fields]:
    """A repeatable block (constraint, artifact, template...) or an API list of objects."""
    key = next((n for n in names if f.key_of(n) is not None), names[0])
    value = f.take(*names)
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        f.warn.add(f.path_of(key), "expected a list; ignored")
        return []
    return [Fields(v, join(f.path_of(key), i), f.warn) for i, v in enumerate(value)]


def named(f: Fields, hcl: str, api: str) -> list[tuple[str, Fields]]:
    """Labeled blocks (HCL `group "x" {}` -> [{"x": {...}}]) or API objects with a `Name`."""
    out: list[tuple[str, Fields]] = []
    if f.key_of(hcl) is not None:
        value = f.take(hcl)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                for label, body in item.items():
                    out.append((str(label), Fields(body, f'{join(f.path, hcl)}["{label}"]', f.warn)))
        return out
    value = f.take(api)
    for i, item in enumerate(value if isinstance(value, list) else []):
        name = str(item.get("Name") or item.get("Label") or i) if isinstance(item, dict) else str(i)
        body = Fields(item, f'{join(f.path, api)}["{name}"]', f.warn)
        body.ignore("Name", "Label")
        out.append((name, body))
    return out


def mapping(f: Fields, *names: str) -> dict[str, str]:
    """`env {}` / `meta {}` blocks or API maps -> str -> str."""
    b = block(f, *names)
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in b.data.items()}


def seconds(value: Any) -> int | None:
    """A Nomad duration: a string like "15s" (HCL) or integer nanoseconds (API)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return -(-value // NS)
    try:
        return parse_duration(value)
    except ValueError:
        return None


def integer(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _attribute(text: str) -> str | None:
    """A Nomad target like ${attr.cpu.arch} or ${meta.rack} -> an agora key, or None."""
    inner = text.strip()
    if inner.startswith("${") and inner.endswith("}"):
        inner = inner[2:-1]
    if inner.startswith("meta."):
        return "labels." + inner[5:]
    return _ATTRS.get(inner)


def match(f: Fields, weighted: bool) -> tuple[dict[str, Any] | None, bool]:
    """A constraint/affinity block -> ({key, op, value[, weight]} or None, distinct_hosts?)."""
    attr = f.take("attribute", "LTarget")
    op = str(f.take("operator", "Operand", default="="))
    value = f.take("value", "RTarget")
    for sugar in _SUGAR_OPS:
        if f.has(sugar):
            op, value = sugar, f.take(sugar)
    if f.take("distinct_hosts") is True or op == "distinct_hosts":
        f.finish()
        return None, True
    weight = integer(f.take("weight", "Weight"), 50) if weighted else None
    f.finish()
    key = _attribute(str(attr or ""))
    if key is None:
        f.warn.add(f.path, f"attribute {attr!r} has no agora equivalent, ignored")
        return None, False
    text = "" if value is None else str(value)
    items = [v.strip() for v in text.split(",") if v.strip()]
    if key == "arch":
        text, items = normalize_arch(text), [normalize_arch(v) for v in items]
    out: dict[str, Any] | None
    if op in ("=", "==", "is"):
        out = {"key": key, "op": "==", "value": text}
    elif op in ("!=", "not"):
        out = {"key": key, "op": "!=", "value": text}
    elif op in (">=", "<="):
        out = {"key": key, "op": op, "value": int(text) if text.lstrip("-").isdigit() else text}
    elif op in (">", "<") and text.lstrip("-").isdigit():
        out = {"key": key, "op": ">=" if op == ">" else "<=", "value": int(text) + (1 if op == ">" else -1)}
    elif op == "set_contains_any" or (op in ("set_contains", "set_contains_all") and "," not in text):
        out = {"key": key, "op": "in", "value": items} if len(items) > 1 else {"key": key, "op": "==", "value": text}
    elif op == "is_set":
        out = {"key": key, "op": "exists"}
    else:
        f.warn.add(f.path, f"operator {op!r} has no agora equivalent, ignored")
        return None, False
    if weighted:
        if not weight:
            return None, False
        out["weight"] = max(-100, min(100, weight))
    return out, False


__all__ = ["NS", "block", "blocks", "integer", "mapping", "match", "named", "seconds"]
