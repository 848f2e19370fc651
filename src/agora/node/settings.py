"""The settings schema: `NodeConfig` (dataclasses) is the one declaration; flags and env names derive from it.

A field of the config is a setting. Its daemon flag and its environment name are derived from its path:
`api_port` is `--api-port` and `AGORA_API_PORT`; a field of a nested section is prefixed with the section's
name (`compute.max_allocations` is `--compute-max-allocations` and `AGORA_COMPUTE_MAX_ALLOCATIONS`). The
field's metadata (written with `setting(...)`) adds help text, a group in `--help`, a historical flag name,
choices, a default derived from other settings, or marks a secret (environment only: a flag would show in
`ps`). A plain dataclass field works too: it gets derived names and no help.

A section is a field whose type is a dataclass. An optional section (`hub: HubSettings | None`) is turned on
by its own flag (`--hub`, `AGORA_HUB=1`); its fields are refused while it is off.

Precedence: defaults < environment < flags. `load` is the only reader of the environment, and the entry
point (the daemon's `main`) is the only caller that passes `os.environ`.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from agora.errors import AgoraError

T = TypeVar("T")
ENV_PREFIX = "AGORA_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SCALARS = (bool, int, float, str, Path)


def setting(
    default: T,
    *,
    help: str = "",
    flag: str | None = None,
    group: str | None = None,
    choices: Sequence[str] | None = None,
    derive: Callable[[Any], Any] | None = None,
    secret: bool = False,
) -> T:
    """A field with a plain default (see the module docstring for the metadata)."""
    meta = _meta(help, flag, group, choices, derive, secret)
    return dataclasses.field(default=default, metadata=meta, repr=not secret)


def setting_factory(
    factory: Callable[[], T],
    *,
    help: str = "",
    flag: str | None = None,
    group: str | None = None,
) -> T:
    """A field whose default is built per instance (lists, sections)."""
    meta = _meta(help, flag, group, None, None, False)
    return dataclasses.field(default_factory=factory, metadata=meta)


def _meta(
    help: str,
    flag: str | None,
    group: str | None,
    choices: Sequence[str] | None,
    derive: Callable[[Any], Any] | None,
    secret: bool,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"help": help, "secret": secret}
    for key, value in (("flag", flag), ("group", group), ("choices", choices), ("derive", derive)):
        if value is not None:
            meta[key] = value
    return meta


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting as the generators see it."""

    path: tuple[str, ...]  # ("hub", "port")
    flag: str | None  # "--hub-port"; None: environment only (a secret)
    env: str  # "AGORA_HUB_PORT"
    kind: type  # bool, int, float, str or Path
    many: bool  # a list (repeat the flag or comma-separate); a tuple field gets a tuple
    optional: bool  # None allowed (an empty environment value means None)
    default: Any
    help: str
    group: str
    choices: tuple[str, ...] | None = None
    derive: Callable[[Any], Any] | None = None
    section_toggle: bool = False  # the on/off switch of an optional section
    container: type = list

    @property
    def dest(self) -> str:
        return "__".join(self.path)

    def parse(self, text: str, source: str) -> Any:
        """A value from its text (an environment value, one flag value)."""
        if self.optional and not self.many and text == "":
            return None
        if self.many:
            return self.container(self._one(p.strip(), source) for p in text.split(",") if p.strip())
        return self._one(text.strip() if self.kind is not str else text, source)

    def _one(self, text: str, source: str) -> Any:
        if self.kind is bool:
            low = text.lower()
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
            raise AgoraError("config_invalid", f"{source}={text!r} is not a yes/no value", hint="Use 1 or 0.")
        if self.choices is not None and text not in self.choices:
            raise AgoraError("config_invalid", f"{source}={text!r}: expected one of {', '.join(self.choices)}")
        try:
            return self.kind(text)
        except ValueError:
            raise AgoraError("config_invalid", f"{source}={text!r} is not a valid {self.kind.__name__}") from None


def schema(cls: type) -> list[Setting]:
    """Every setting of a config dataclass, sections included, in declaration order."""
    return list(_walk(cls, (), None))


def _walk(cls: type, prefix: tuple[str, ...], group: str | None) -> Iterator[Setting]:
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        path = (*prefix, f.name)
        meta = f.metadata
        tp, optional = _strip_optional(hints[f.name])
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            title = meta.get("group") or f.name
            if optional:
                yield Setting(
                    path,
                    meta.get("flag") or _flag(path),
                    _env(path),
                    bool,
                    False,
                    False,
                    False,
                    meta.get("help", "") or f"turn the {f.name} section on",
                    title,
                    section_toggle=True,
                )
            yield from _walk(tp, path, title)
            continue
        kind, many, container, choices = _kind(tp, f"{cls.__name__}.{f.name}")
        choices = tuple(meta["choices"]) if "choices" in meta else choices
        default: Any = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        yield Setting(
            path,
            None if meta.get("secret") else (meta.get("flag") or _flag(path)),
            _env(path),
            kind,
            many,
            optional,
            default,
            meta.get("help", ""),
            group or meta.get("group") or "node",
            choices,
            meta.get("derive"),
            container=container,
        )


def _flag(path: tuple[str, ...]) -> str:
    return "--" + "-".join(path).replace("_", "-")


def _env(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "_".join(path).upper()


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _kind(tp: Any, where: str) -> tuple[type, bool, type, tuple[str, ...] | None]:
    origin, args = get_origin(tp), get_args(tp)
    if origin is list and len(args) == 1:
        kind, _, _, choices = _kind(args[0], where)
        return kind, True, list, choices
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        kind, _, _, choices = _kind(args[0], where)
        return kind, True, tuple, choices
    if origin is Literal and all(isinstance(a, str) for a in args):
        return str, False, list, tuple(args)
    if tp in _SCALARS:
        return tp, False, list, None
    raise TypeError(f"{where}: a setting must be bool, int, float, str, Path, a list/tuple or Literal of them")


# -- generators -------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per setting, grouped by section. Defaults are SUPPRESSed, so a namespace holds only what the
    command line said (and the environment can fill the rest)."""
    groups: dict[str, Any] = {}
    for s in schema(cls):
        if s.flag is None:
            continue
        group = groups.get(s.group)
        if group is None:
            group = groups[s.group] = parser.add_argument_group(s.group)
        # a derived default (`lost_after`: 3 x announce_interval) or one the help states itself is not repeated as
        # the bare dataclass value, which would be wrong as soon as another setting changes
        stated = s.derive is not None or "(default" in s.help
        shown = "" if s.section_toggle or stated or s.default in (None, [], ()) else f" (default: {_show(s.default)})"
        help_text = f"{s.help or s.dest.replace('__', '.')}{shown} [env {s.env}]".replace("%", "%%")
        if s.kind is bool and not s.many:
            group.add_argument(
                s.flag, dest=s.dest, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
            continue
        group.add_argument(
            s.flag,
            dest=s.dest,
            default=argparse.SUPPRESS,
            action="append" if s.many else "store",
            type=_flag_parser(s),
            metavar=s.path[-1].upper(),
            help=help_text + (" (repeat, or comma-separate)" if s.many else ""),
        )


def _flag_parser(s: Setting) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return s.parse(text, s.flag or s.env)
        except AgoraError as err:
            raise argparse.ArgumentTypeError(err.message) from None

    parse.__name__ = s.kind.__name__  # argparse names the type in its error message
    return parse


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def from_environment(cls: type, environ: Mapping[str, str]) -> dict[tuple[str, ...], Any]:
    """The settings the environment sets (`AGORA_*` names), by path."""
    return {s.path: s.parse(environ[s.env], s.env) for s in schema(cls) if s.env in environ}


def from_namespace(cls: type, ns: argparse.Namespace) -> dict[tuple[str, ...], Any]:
    """The settings the command line set, by path (a repeated list flag is flattened)."""
    given = vars(ns)
    out: dict[tuple[str, ...], Any] = {}
    for s in schema(cls):
        if s.dest in given:
            value = given[s.dest]
            out[s.path] = s.container(v for part in value for v in part) if s.many else value
    return out


def build(cls: type[T], values: Mapping[tuple[str, ...], Any]) -> T:
    """A config from defaults and the given values; then the derived defaults of what nobody set."""
    settings = schema(cls)
    root = _build(cls, (), values, settings)
    for s in settings:
        if s.derive is None or s.path in values:
            continue
        parent: Any = root
        for name in s.path[:-1]:
            parent = getattr(parent, name)
        if parent is not None:
            setattr(parent, s.path[-1], s.derive(root))
    return root


def _build(cls: type[T], prefix: tuple[str, ...], values: Mapping[tuple[str, ...], Any], settings: list[Setting]) -> T:
    kwargs: dict[str, Any] = {}
    by_path = {s.path: s for s in settings}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        path = (*prefix, f.name)
        tp, optional = _strip_optional(hints[f.name])
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            inner = [p for p in values if p[: len(path)] == path and len(p) > len(path)]
            if optional and not values.get(path, False):
                if inner:
                    names = ", ".join(by_path[p].flag or by_path[p].env for p in inner)
                    toggle = by_path[path]
                    raise AgoraError(
                        "config_invalid",
                        f"{names}: settings of the {f.name} section, which is off",
                        hint=f"Add {toggle.flag} (or {toggle.env}=1), or drop them.",
                    )
                if path in values:
                    kwargs[f.name] = None
                continue
            kwargs[f.name] = _build(tp, path, values, settings)
        elif path in values:
            kwargs[f.name] = values[path]
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # a section's own checks (e.g. AdmissionSettings.__post_init__)
        section = ".".join(prefix) or cls.__name__
        raise AgoraError("config_invalid", f"{section}: {exc}", hint="See `python -m agora.daemon --help`.") from None


def load(cls: type[T], parser: argparse.ArgumentParser, argv: Sequence[str] | None, environ: Mapping[str, str]) -> T:
    """Defaults < environment < command line."""
    ns = parser.parse_args(argv)
    return build(cls, {**from_environment(cls, environ), **from_namespace(cls, ns)})


__all__ = [
    "ENV_PREFIX",
    "Setting",
    "add_arguments",
    "build",
    "from_environment",
    "from_namespace",
    "load",
    "schema",
    "setting",
    "setting_factory",
]
