"""Parsing one task of a job spec: engine rules, resources, inputs and outputs.

Engine rules are checked here, not later at placement, because a spec that names `image` for a wasm
task is a mistake the user should hear about on submit, with the field path, not from a node.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from agora.codec import CID
from agora.errors import AgoraError
from agora.jobs.problems import Problems, child
from agora.jobs.quantities import parse_bytes, parse_cpu, parse_duration
from agora.jobs.readers import (
    ENV_KEY_RE,
    read_abs_path,
    read_bool,
    read_choice,
    read_http_url,
    read_int,
    read_list,
    read_name,
    read_sha256,
    read_str,
    read_str_list,
    read_str_map,
)
from agora.models.job import (
    DEFAULT_CPU_MILLI,
    DEFAULT_DISK,
    DEFAULT_ENGINE,
    DEFAULT_MEMORY,
    DEFAULT_TIMEOUT_S,
    ENGINES,
    INPUT_ROOTS,
    OUTPUT_ROOTS,
    PUBLISH_TYPES,
    SOURCE_TYPES,
    Gpu,
    InputSpec,
    OutputSpec,
    Publish,
    Resources,
    Scalar,
    Source,
    TaskSpec,
    under_root,
)

TASK_FIELDS = (
    "name",
    "engine",
    "module",
    "image",
    "command",
    "args",
    "env",
    "resources",
    "timeout",
    "inputs",
    "outputs",
    "network",
    "allow_pull",
    "depends_on",
)
# Which fields each engine needs and which make no sense for it.
REQUIRED = {"wasm": ("module",), "process": ("command",), "docker": ("image",), "firecracker": ("image",)}
NOT_USED = {
    "wasm": ("image", "command", "allow_pull"),
    "process": ("module", "image", "allow_pull"),
    "docker": ("module",),
    "firecracker": ("module", "allow_pull"),
}
EXPECTED_FOR = {
    "module": "a wasm module: a path, an http(s) URL, 'sha256:<64 hex>' or 'cid:<cid>'",
    "command": "a non-empty list of strings",
    "image": "an image reference like busybox:1.37",
}
MAX_INLINE = 64 * 1024
SOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "inline": ("type", "content", "encoding"),
    "local": ("type", "path"),
    "http": ("type", "url"),
    "s3": ("type", "bucket", "key", "region", "endpoint"),
    "hub": ("type", "name", "bucket"),
}
PUBLISH_FIELDS: dict[str, tuple[str, ...]] = {
    "local": ("type",),
    "s3": ("type", "bucket", "key", "region", "endpoint"),
    "hub": ("type", "bucket"),
}
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _module(p: Problems, path: str, value: Any) -> str | None:
    text = read_str(p, path, value, expected=EXPECTED_FOR["module"])
    if text is None:
        return None
    if "://" in text:
        return read_http_url(p, path, text)
    if text.startswith("sha256:"):
        return "sha256:" + digest if (digest := read_sha256(p, path, text[7:])) else None
    if text.startswith("cid:"):
        try:
            CID.parse(text[4:])
        except AgoraError:
            p.add(path, "a CIDv1 in base32 after 'cid:' (cid:bafy...)", text)
            return None
    return text


def _image(p: Problems, path: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        p.add(path, EXPECTED_FOR["image"], value)
        return None
    return value


def _resources(p: Problems, path: str, raw: Any) -> Resources:
    m = p.mapping(path, raw, ("cpu", "memory", "disk", "gpu"))
    if m is None:
        return Resources()
    cpu = p.check(child(path, "cpu"), m.get("cpu", DEFAULT_CPU_MILLI / 1000), parse_cpu, "cores like 1, 0.5 or '500m'")
    memory = p.check(child(path, "memory"), m.get("memory", DEFAULT_MEMORY), parse_bytes, "a quantity like 512Mi")
    if memory == 0:
        p.add(child(path, "memory"), "more than 0 bytes", m.get("memory"))
    disk = p.check(child(path, "disk"), m.get("disk", DEFAULT_DISK), parse_bytes, "a quantity like 1Gi")
    gpu = Gpu()
    if "gpu" in m:
        gpath = child(path, "gpu")
        g = p.mapping(gpath, m["gpu"], ("count", "model", "vram"))
        if g is not None:
            count = read_int(p, child(gpath, "count"), g.get("count", 1), lo=0, hi=64)
            model = read_str(p, child(gpath, "model"), g["model"]) if "model" in g else None
            vram = p.check(child(gpath, "vram"), g.get("vram", 0), parse_bytes, "a quantity like 16Gi")
            if count == 0 and (model or vram):
                p.add(child(gpath, "count"), "at least 1 when model or vram is set", 0)
            gpu = Gpu(count=count or 0, model=model, vram=vram or 0)
    return Resources(cpu=cpu or DEFAULT_CPU_MILLI, memory=memory or 0, disk=disk or 0, gpu=gpu)


def _params(p: Problems, path: str, m: Mapping[str, Any], kind: str, role: str) -> dict[str, Scalar]:
    """Type-specific fields of an input source or an output publisher."""
    out: dict[str, Scalar] = {}
    if kind == "inline":
        content = m.get("content")
        encoding = read_choice(p, child(path, "encoding"), m.get("encoding", "utf-8"), ("utf-8", "base64"))
        if not isinstance(content, str):
            p.add(child(path, "content"), "the input's content as a string", content)
            return out
        size = len(content.encode())
        if encoding == "base64":
            try:
                size = len(base64.b64decode(content, validate=True))
                out["encoding"] = "base64"
            except (binascii.Error, ValueError):
                p.add(child(path, "content"), "base64 text (encoding is base64)", content)
        if size > MAX_INLINE:
            p.add(child(path, "content"), f"at most {MAX_INLINE} bytes inline (use http, s3 or hub)", f"{size} bytes")
        out["content"] = content
    elif kind == "local" and role == "source":
        if (v := read_str(p, child(path, "path"), m.get("path"), expected="a file or directory path")) is not None:
            out["path"] = v
    elif kind == "http":
        if (v := read_http_url(p, child(path, "url"), m.get("url"))) is not None:
            out["url"] = v
    elif kind == "hub":
        name = read_str(p, child(path, "name"), m.get("name"), expected="an object name") if role == "source" else None
        if name is not None:
            out["name"] = name
        if "bucket" in m and (v := read_str(p, child(path, "bucket"), m["bucket"])) is not None:
            out["bucket"] = v
    elif kind == "s3":
        bucket = m.get("bucket")
        if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket):
            p.add(child(path, "bucket"), "an S3 bucket name (3-63 of a-z 0-9 . -)", bucket)
        else:
            out["bucket"] = bucket
        if "key" in m:
            key = m["key"]
            if not isinstance(key, str) or "\x00" in key:
                p.add(child(path, "key"), "an object key or a prefix ending in '/'", key)
            else:
                out["key"] = key
        if "region" in m and (v := read_str(p, child(path, "region"), m["region"])) is not None:
            out["region"] = v
        if "endpoint" in m and (v := read_http_url(p, child(path, "endpoint"), m["endpoint"])) is not None:
            out["endpoint"] = v
    return out


def _typed(p: Problems, path: str, raw: Any, role: str) -> tuple[str, dict[str, Scalar]] | None:
    """(type, params) of a source or publish block, checking the fields its type allows."""
    types, fields = (SOURCE_TYPES, SOURCE_FIELDS) if role == "source" else (PUBLISH_TYPES, PUBLISH_FIELDS)
    if not isinstance(raw, Mapping):
        p.add(path, "a mapping with a 'type' (" + ", ".join(types) + ")", raw)
        return None
    kind = read_choice(p, child(path, "type"), raw.get("type"), types)
    if kind is None:
        return None
    m = p.mapping(path, raw, fields[kind])
    return (kind, _params(p, path, m, kind, role)) if m is not None else None


def _mount(p: Problems, path: str, value: Any, roots: tuple[str, ...]) -> str | None:
    """A mount path under one of `roots`: the provider maps only those into the task's sandbox, so a
    path elsewhere is refused here, on submit, not by the node after the job was placed."""
    mount = read_abs_path(p, path, value)
    if mount is not None and not under_root(mount, roots):
        p.add(path, f"a path under {' or '.join(roots)} (like {roots[0]}/data)", mount)
        return None
    return mount


def _inputs(p: Problems, path: str, raw: Any) -> tuple[InputSpec, ...]:
    out: list[InputSpec] = []
    for i, item in enumerate(read_list(p, path, raw)):
        ipath = child(path, i)
        m = p.mapping(ipath, item, ("name", "source", "path", "sha256"))
        if m is None:
            continue
        name = read_name(p, child(ipath, "name"), m.get("name"))
        src = _typed(p, child(ipath, "source"), m.get("source"), "source")
        mount = _mount(p, child(ipath, "path"), m.get("path", f"/inputs/{name}"), INPUT_ROOTS)
        sha = read_sha256(p, child(ipath, "sha256"), m["sha256"]) if "sha256" in m else None
        if name and src and mount:
            out.append(InputSpec(name=name, source=Source(src[0], src[1]), path=mount, sha256=sha))
    return tuple(out)


def _outputs(p: Problems, path: str, raw: Any) -> tuple[OutputSpec, ...]:
    out: list[OutputSpec] = []
    for i, item in enumerate(read_list(p, path, raw)):
        opath = child(path, i)
        m = p.mapping(opath, item, ("name", "path", "publish"))
        if m is None:
            continue
        name = read_name(p, child(opath, "name"), m.get("name"))
        mount = _mount(p, child(opath, "path"), m.get("path", f"/outputs/{name}"), OUTPUT_ROOTS)
        pub = _typed(p, child(opath, "publish"), m.get("publish", {"type": "local"}), "publish")
        if name and mount and pub:
            out.append(OutputSpec(name=name, path=mount, publish=Publish(pub[0], pub[1])))
    return tuple(out)


def _unique(p: Problems, path: str, items: list[tuple[str, str]], what: str) -> None:
    seen: dict[str, str] = {}
    for item_path, value in items:
        if value in seen:
            p.add(item_path, f"a {what} not already used at {seen[value]}", value)
        else:
            seen[value] = item_path


def parse_task(p: Problems, path: str, raw: Any, job_type: str | None) -> TaskSpec | None:
    m = p.mapping(path, raw, TASK_FIELDS)
    if m is None:
        return None
    name = read_name(p, child(path, "name"), m.get("name"))
    engine = read_choice(p, child(path, "engine"), m.get("engine", DEFAULT_ENGINE), ENGINES)
    unused: tuple[str, ...] = ()
    if engine is not None:
        unused = NOT_USED[engine]
        for f in REQUIRED[engine]:
            if m.get(f) is None or m.get(f) == []:
                p.add(child(path, f), f"{EXPECTED_FOR[f]} (required by engine {engine})", m.get(f))
        for f in NOT_USED[engine]:
            if f in m and m[f] not in (None, [], False):  # empty values are harmless
                p.add(child(path, f), f"nothing: engine {engine} does not use {f}", m[f])
    module = (
        _module(p, child(path, "module"), m["module"])
        if m.get("module") is not None and "module" not in unused
        else None
    )
    image = (
        _image(p, child(path, "image"), m["image"]) if m.get("image") is not None and "image" not in unused else None
    )
    command = read_str_list(p, child(path, "command"), m.get("command", []))
    args = read_str_list(p, child(path, "args"), m.get("args", []))
    env = read_str_map(p, child(path, "env"), m.get("env", {}), ENV_KEY_RE, "an environment variable name")
    resources = _resources(p, child(path, "resources"), m.get("resources", {}))
    timeout: int | None = DEFAULT_TIMEOUT_S if job_type != "service" else None
    if "timeout" in m:
        if m["timeout"] is None and job_type == "service":
            timeout = None
        elif m["timeout"] is None:  # no timeout is for services: say so, not just "not a duration"
            p.add(child(path, "timeout"), "seconds or a duration like 30s (null, no timeout, only with type: service)")
        else:
            timeout = p.check(child(path, "timeout"), m["timeout"], parse_duration, "seconds or a duration like 30s")
            if timeout == 0:
                p.add(child(path, "timeout"), "more than 0 seconds (services may use null: no timeout)", 0)
    inputs = _inputs(p, child(path, "inputs"), m.get("inputs", []))
    outputs = _outputs(p, child(path, "outputs"), m.get("outputs", []))
    mounts = [(child(path, f"inputs[{i}].path"), x.path) for i, x in enumerate(inputs)]
    mounts += [(child(path, f"outputs[{i}].path"), x.path) for i, x in enumerate(outputs)]
    _unique(p, path, mounts, "mount path")
    _unique(p, path, [(child(path, f"inputs[{i}].name"), x.name) for i, x in enumerate(inputs)], "input name")
    _unique(p, path, [(child(path, f"outputs[{i}].name"), x.name) for i, x in enumerate(outputs)], "output name")
    network = read_bool(p, child(path, "network"), m.get("network", False))
    allow_pull = read_bool(p, child(path, "allow_pull"), m.get("allow_pull", False))
    depends_on = read_str_list(p, child(path, "depends_on"), m.get("depends_on", []))
    if depends_on is not None:
        _unique(p, path, [(child(path, f"depends_on[{i}]"), d) for i, d in enumerate(depends_on)], "dependency")
    if name is None or engine is None or command is None or args is None or network is None or allow_pull is None:
        return None
    return TaskSpec(
        name=name,
        engine=engine,
        module=module,
        image=image,
        command=command,
        args=args,
        env=env,
        resources=resources,
        timeout=timeout,
        inputs=inputs,
        outputs=outputs,
        network=network,
        allow_pull=allow_pull,
        depends_on=depends_on or (),
    )


__all__ = ["TASK_FIELDS", "parse_task"]
