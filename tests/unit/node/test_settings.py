"""The settings schema: every NodeConfig field has a daemon flag and an AGORA_* name, and both round-trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from agora.daemon.main import build_config, build_parser, parse_args
from agora.errors import AgoraError
from agora.node import NodeConfig, settings
from agora.node.settings import Setting

SCHEMA = settings.schema(NodeConfig)
# names the CLI and the client read for themselves (not node settings): a setting must not take one
CLIENT_NAMES = {"AGORA_API", "AGORA_NODE", "AGORA_DEVNET_DIR", "AGORA_DEMO_KEEP"}


def _sample(s: Setting) -> Any:
    """A value different from the default, for the setting's type."""
    if s.kind is bool:
        return not s.default
    if s.choices is not None:
        return next(c for c in s.choices if c != s.default)
    if s.path == ("admission", "max_lifetime"):
        return 300.0  # must stay >= public_max_lifetime (120): the section checks it
    if s.path in (("trust", "prior"), ("trust", "latency_alpha")):
        return 0.25  # in (0, 1): the section checks it
    if s.path in (("ledger", "hubs"), ("ledger", "operators")):
        return s.container(["did:key:z6MkSampleA", "did:key:z6MkSampleB"])  # the section checks they are DIDs
    one: Any = {int: 7, float: 2.5, str: "sample-value", Path: Path("/tmp/sample-path")}[s.kind]
    if s.kind in (int, float) and s.default == one:
        one = one * 3
    return s.container([one, one]) if s.many else one


def _text(value: Any) -> str:
    return str(value)


def _get(config: NodeConfig, path: tuple[str, ...]) -> Any:
    value: Any = config
    for name in path:
        value = getattr(value, name)
    return value


def _needs(s: Setting) -> tuple[list[str], dict[str, str]]:
    """What turns the setting's optional section on (flags, environment)."""
    if len(s.path) > 1 and s.path[0] == "hub":
        return ["--hub"], {"AGORA_HUB": "1"}
    return [], {}


def _leaves() -> list[Setting]:
    return [s for s in SCHEMA if not s.section_toggle]


def test_every_field_of_every_section_is_a_setting() -> None:
    def paths(cls: type, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for f in dataclasses.fields(cls):
            sub = {s.path for s in SCHEMA if s.path[: len(prefix) + 1] == (*prefix, f.name)}
            if len(sub) > 1:  # a section
                out |= {p for p in sub if len(p) > len(prefix) + 1}
            else:
                out.add((*prefix, f.name))
        return out

    assert paths(NodeConfig, ()) <= {s.path for s in _leaves()}
    assert {"compute", "runner", "hub"} <= {s.path[0] for s in SCHEMA if len(s.path) > 1}


def test_every_setting_has_an_env_name_and_a_flag_unless_secret() -> None:
    flags = [s.flag for s in SCHEMA if s.flag is not None]
    envs = [s.env for s in SCHEMA]
    assert len(flags) == len(set(flags)) and len(envs) == len(set(envs))
    assert all(e.startswith("AGORA_") for e in envs) and not CLIENT_NAMES & set(envs)
    secrets = {s.env for s in SCHEMA if s.flag is None}
    assert secrets == {"AGORA_PASSPHRASE", "AGORA_S3_ACCESS_KEY", "AGORA_S3_SECRET_KEY"}
    fields = {f.name: f for f in dataclasses.fields(NodeConfig)}
    assert all(not fields[e.removeprefix("AGORA_").lower()].repr for e in secrets)  # never in a log line


@pytest.mark.parametrize("s", [s for s in _leaves() if s.flag is not None], ids=lambda s: s.flag)
def test_a_flag_round_trips(s: Setting) -> None:
    assert s.flag is not None
    value = _sample(s)
    extra, _ = _needs(s)
    if s.kind is bool:
        argv = [s.flag if value else "--no-" + s.flag[2:]]
    elif s.many:
        argv = [a for v in value for a in (s.flag, _text(v))]
    else:
        argv = [s.flag, _text(value)]
    config = build_config(parse_args([*extra, *argv]))
    assert _get(config, s.path) == value


@pytest.mark.parametrize("s", _leaves(), ids=lambda s: s.env)
def test_an_env_name_round_trips(s: Setting) -> None:
    value = _sample(s)
    _, extra = _needs(s)
    if s.kind is bool:
        text = "1" if value else "0"
    elif s.many:
        text = ",".join(map(_text, value))
    else:
        text = _text(value)
    config = build_config(parse_args([]), {**extra, s.env: text})
    assert _get(config, s.path) == value


def test_flags_win_over_the_environment_over_defaults() -> None:
    env = {"AGORA_API_PORT": "9001", "AGORA_ANNOUNCE_INTERVAL": "2"}
    assert build_config(parse_args([]), env).api_port == 9001
    config = build_config(parse_args(["--api-port", "9002"]), env)
    assert config.api_port == 9002 and config.announce_interval == 2.0
    assert build_config(parse_args([])).api_port == NodeConfig().api_port


def test_derived_defaults_follow_the_announce_interval_unless_set() -> None:
    config = build_config(parse_args(["--announce-interval", "2"]))
    assert (config.lost_after, config.expire_after) == (6.0, 24.0)
    assert build_config(parse_args(["--announce-interval", "2", "--lost-after", "9"])).lost_after == 9.0
    hub = build_config(parse_args(["--hub", "--tls-ca", "/ca.pem"])).hub
    assert hub is not None and hub.tls_ca == "/ca.pem"  # the hub's CA defaults to the node's


def test_a_hub_setting_without_the_hub_is_refused() -> None:
    with pytest.raises(AgoraError) as info:
        build_config(parse_args(["--hub-port", "5000"]))
    assert info.value.code == "config_invalid" and "--hub-port" in info.value.message
    assert "--hub" in (info.value.hint or "")
    assert build_config(parse_args(["--hub-url", "nats://a:1,nats://b:2"])).hub is None


@pytest.mark.parametrize(
    ("env", "word"),
    [
        ({"AGORA_API_PORT": "eighty"}, "int"),
        ({"AGORA_BENCHMARK": "fast"}, "on, off, quick"),
        ({"AGORA_HUB": "maybe"}, "yes/no"),
    ],
)
def test_a_bad_environment_value_is_config_invalid(env: dict[str, str], word: str) -> None:
    with pytest.raises(AgoraError) as info:
        build_config(parse_args([]), env)
    assert info.value.code == "config_invalid" and word in info.value.message and next(iter(env)) in info.value.message


def test_a_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(["--benchmark", "fast"])
    assert info.value.code == 2 and "--benchmark" in capsys.readouterr().err


def test_an_unknown_flag_is_one_line_and_a_pointer_to_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`agora node up --typo` hands the flag to the node process: its error must not bury the typo under
    the usage of every setting."""
    with pytest.raises(SystemExit) as info:
        parse_args(["--bogus-flag"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "unrecognized arguments: --bogus-flag" in err
    assert "--help` lists every setting" in err and "--s3-bucket" not in err  # no usage dump


def test_help_names_each_env_variable() -> None:
    text = build_parser().format_help()
    assert all(s.env in text for s in SCHEMA if s.flag is not None)


def test_help_states_each_default_once_and_a_derived_one_by_its_rule() -> None:
    """`--lost-after` defaults to 3 x --announce-interval: help must not also print 15.0, which holds only for the
    default interval; `--home` states its default in words, not a second time as this machine's path."""
    parser = build_parser()
    helps = {a.option_strings[0]: a.help or "" for a in parser._actions if a.option_strings}
    assert "3 x announce interval" in helps["--lost-after"] and "default: 15.0" not in helps["--lost-after"]
    assert "12 x announce interval" in helps["--expire-after"] and "default: 60.0" not in helps["--expire-after"]
    assert helps["--home"].count("default") == 1
    assert "(default: 5.0)" in helps["--announce-interval"]  # a plain default is still shown


def test_the_passphrase_reaches_the_node_from_the_environment_only(tmp_path: Path) -> None:
    config = build_config(parse_args(["--home", str(tmp_path)]), {"AGORA_PASSPHRASE": "correct horse"})
    assert config.passphrase == "correct horse" and "correct horse" not in repr(config)
    with pytest.raises(SystemExit):
        parse_args(["--passphrase", "x"])


def test_a_field_of_an_unsupported_type_is_caught_by_the_schema() -> None:
    @dataclasses.dataclass
    class Odd:
        mapping: dict[str, int] = dataclasses.field(default_factory=dict)

    with pytest.raises(TypeError, match=r"Odd\.mapping"):
        settings.schema(Odd)


def test_admission_limits_are_settings_and_a_section_check_is_config_invalid() -> None:
    """The replay-cache shares and public rate limits reach the node from flags or the environment; a value the
    section itself refuses (AdmissionSettings.__post_init__) is `config_invalid`, not a traceback."""
    config = build_config(parse_args(["--hub", "--admission-public-rate", "5"]), {"AGORA_ADMISSION_PUBLIC_BURST": "7"})
    assert (config.admission.public_rate, config.admission.public_burst) == (5.0, 7.0)
    with pytest.raises(AgoraError) as info:
        build_config(parse_args(["--hub", "--admission-public-rate", "0"]))
    assert info.value.code == "config_invalid" and "admission" in info.value.message
