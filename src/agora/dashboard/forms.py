"""The create-offer and create-intent forms: what each field means, how a submitted form becomes the API's
body, and how the API's field errors (`details.errors[].path`) land next to the field that caused them.

The API is the validator: a value the form cannot convert (letters in a number) is sent as typed, so the
person reads the API's own words about it, next to the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from agora.errors import AgoraError

MIB = 1024 * 1024


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    help: str
    kind: str = "text"  # text | number | select | checkbox | textarea
    default: str = ""
    choices: tuple[str, ...] = ()
    api_paths: tuple[str, ...] = ()  # the API's field paths this form field answers for
    placeholder: str = ""  # an example shown in the empty field (the page may give a better one)


OFFER_FIELDS: tuple[Field, ...] = (
    Field("offer_id", "Offer id", "Optional: letters, digits and ._:-; a new id is made when empty."),
    Field(
        "cpu",
        "CPU cores",
        "Cores sold under this offer, e.g. 1 or 0.5.",
        "number",
        "1",
        api_paths=("resources.cpu_millis", "resources"),
    ),
    Field(
        "memory_mib",
        "Memory (MiB)",
        "Memory sold under this offer, in MiB.",
        "number",
        "256",
        api_paths=("resources.memory_bytes",),
    ),
    Field(
        "disk_mib",
        "Disk (MiB)",
        "Scratch disk sold under this offer, in MiB (a job asks 1 GiB unless it says otherwise).",
        "number",
        "2048",
        api_paths=("resources.disk_bytes",),
    ),
    Field(
        "cpu_second",
        "Price per core-second",
        "Whole minor units per core-second.",
        "number",
        "1",
        api_paths=("price.base.cpu_second",),
    ),
    Field(
        "memory_gib_second",
        "Price per GiB-second",
        "Whole minor units per GiB-second of memory.",
        "number",
        "1",
        api_paths=("price.base.memory_gib_second",),
    ),
    Field(
        "minimum",
        "Minimum per job",
        "The least a job pays, in minor units.",
        "number",
        "10",
        api_paths=("price.base.minimum", "price"),
    ),
    Field(
        "max_duration_s",
        "Longest job (s)",
        "Optional: the longest job this offer runs, in seconds.",
        "number",
        "",
        api_paths=("terms.max_duration_s",),
    ),
    Field(
        "access",
        "Who may buy",
        "open: anyone; min_trust: providers' trust model decides.",
        "select",
        "open",
        ("open", "min_trust"),
        ("terms.access.mode", "terms.access", "terms"),
    ),
    Field(
        "min_trust",
        "Minimum trust",
        "With access min_trust: a requester's trust, 0 to 1.",
        "number",
        "",
        api_paths=("terms.access.min_trust",),
    ),
)

INTENT_FIELDS: tuple[Field, ...] = (
    Field("name", "Name", "Optional: a name people recognise.", api_paths=("name",)),
    Field("job_name", "Job name", "The job's name.", "text", "hello", api_paths=("job.name",)),
    Field(
        "module",
        "Wasm module",
        "Absolute path of a WASI .wasm module on this machine. `agora devnet demo` writes one, hello.wasm, in "
        "the devnet directory (.agora-devnet where you ran it); or compile examples/wasm/hello.wat with wat2wasm.",
        api_paths=("job", "job.tasks", "job.tasks[0].module", "job.tasks[0]"),
        placeholder="/path/to/.agora-devnet/hello.wasm",
    ),
    Field(
        "cpu",
        "CPU cores",
        "Cores the task needs, e.g. 0.5 (a wasm task is priced as one core at least).",
        "number",
        "0.5",
        api_paths=("job.tasks[0].resources.cpu", "job.tasks[0].resources"),
    ),
    Field(
        "memory",
        "Memory",
        "What the task needs, e.g. 64Mi or 1Gi.",
        "text",
        "64Mi",
        api_paths=("job.tasks[0].resources.memory",),
    ),
    Field(
        "budget",
        "Budget",
        "The most the whole intent may cost, in minor units (a positive integer).",
        "number",
        "1000",
        api_paths=("budget",),
    ),
    Field(
        "max_price",
        "Max price per contract",
        "Optional: at most the budget.",
        "number",
        "",
        api_paths=("policy.max_price",),
    ),
    Field(
        "min_trust",
        "Minimum provider trust",
        "Optional: 0 to 1; providers below it are not asked.",
        "number",
        "",
        api_paths=("policy.min_trust",),
    ),
    Field(
        "open",
        "Open it now",
        "Open the intent at once (else it is kept as a draft).",
        "checkbox",
        "on",
        api_paths=("open",),
    ),
)


def parse_form(raw: bytes) -> dict[str, str]:
    """An urlencoded body as {name: last value} (the forms post no files)."""
    return {k: v[-1].strip() for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _int(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        return value  # the API says what it expected


def _num(value: str) -> Any:
    try:
        return float(value) if any(c in value for c in ".eE") else int(value)
    except ValueError:
        return value


def offer_body(form: Mapping[str, str]) -> dict[str, Any]:
    cpu = _num(form.get("cpu", ""))
    memory = _num(form.get("memory_mib", ""))
    disk = _num(form.get("disk_mib", "") or "0")
    base = {k: _int(form.get(k, "")) for k in ("cpu_second", "memory_gib_second", "minimum") if form.get(k, "") != ""}
    access: dict[str, Any] = {"mode": form.get("access") or "open"}
    if form.get("min_trust"):
        access["min_trust"] = _num(form["min_trust"])
    terms: dict[str, Any] = {"access": access}
    if form.get("max_duration_s"):
        terms["max_duration_s"] = _int(form["max_duration_s"])
    body: dict[str, Any] = {
        "resources": {
            "cpu_millis": round(cpu * 1000) if isinstance(cpu, int | float) else cpu,
            "memory_bytes": round(memory * MIB) if isinstance(memory, int | float) else memory,
            "disk_bytes": round(disk * MIB) if isinstance(disk, int | float) else disk,
        },
        "price": {"base": base},
        "terms": terms,
    }
    if form.get("offer_id"):
        body["offer_id"] = form["offer_id"]
    return body


def intent_body(form: Mapping[str, str]) -> dict[str, Any]:
    resources: dict[str, Any] = {"cpu": _num(form.get("cpu", "")), "memory": form.get("memory", "")}
    task = {"name": "main", "module": form.get("module", ""), "resources": resources}
    body: dict[str, Any] = {
        "job": {"name": form.get("job_name") or "job", "tasks": [task]},
        "budget": _int(form.get("budget", "")),
        "policy": {},
    }
    if form.get("name"):
        body["name"] = form["name"]
    for key in ("max_price", "min_trust"):
        if form.get(key):
            body["policy"][key] = _int(form[key]) if key == "max_price" else _num(form[key])
    if form.get("open") == "on":
        body["open"] = True
    return body


def field_errors(err: AgoraError, fields: tuple[Field, ...]) -> tuple[dict[str, list[str]], list[str]]:
    """The API's error as ({form field: [messages]}, [messages for no field]): each `details.errors[]` entry
    (path, expected, got; or FastAPI's path, message) goes to the field whose `api_paths` names it (its
    longest match), the rest above the form."""
    items = err.details.get("errors") or [{"path": err.details.get("field", ""), "message": err.message}]
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for item in items:
        path = str(item.get("path", ""))
        text = item.get("message") or f"expected {item.get('expected')}, got {item.get('got')!r}"
        owner = _owner(path, fields)
        if owner is None:
            general.append(f"{path}: {text}" if path else str(text))
        elif (inner := _inner(path, fields, owner)) is not None:  # a text area holds many fields: name the one
            by_field.setdefault(owner, []).append(f"{inner}: {text}")
        else:
            by_field.setdefault(owner, []).append(str(text))
    if not by_field and not general:
        general.append(err.message)
    return by_field, general


def _inner(path: str, fields: tuple[Field, ...], owner: str) -> str | None:
    """For a text area (a whole document in one field): the path inside it, e.g. `rounds` of `training.rounds`."""
    field = next(f for f in fields if f.name == owner)
    if field.kind != "textarea":
        return None
    for p in sorted(field.api_paths, key=len, reverse=True):
        if path.startswith(p + ".") or path.startswith(p + "["):
            return path[len(p) :].lstrip(".")
    return None


def _owner(path: str, fields: tuple[Field, ...]) -> str | None:
    best: tuple[int, str] | None = None
    for f in fields:
        for p in f.api_paths:
            under = path == p or path.startswith(p + ".") or path.startswith(p + "[")
            if under and (best is None or len(p) > best[0]):
                best = (len(p), f.name)
    return best[1] if best else None


__all__ = ["INTENT_FIELDS", "OFFER_FIELDS", "Field", "field_errors", "intent_body", "offer_body", "parse_form"]
