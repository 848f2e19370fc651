"""Units -> integers: Kubernetes-style quantities, CPU, durations."""

from __future__ import annotations

import pytest

from agora.jobs.quantities import format_bytes, parse_bytes, parse_cpu, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (512, 512),
        (1024.0, 1024),
        ("512Mi", 512 * 2**20),
        ("1Gi", 2**30),
        ("1.5Gi", 3 * 2**29),
        ("1G", 10**9),
        ("1k", 1000),
        ("2Ki", 2048),
        ("1Ti", 2**40),
        ("300MB", 300 * 10**6),
        ("64MiB", 64 * 2**20),
        (" 10 ", 10),
        ("129e6", 129 * 10**6),
        ("1E3", 1000),
        ("1E", 10**18),
        ("0.5", 1),  # fractions of a byte round up, never down
    ],
)
def test_bytes(text: object, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["lots", "1Xi", "-1Gi", "1 Gi B", "", True, None, [1], float("inf"), "512m", "1gb"])
def test_bytes_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_bytes(bad)


def test_bytes_loose_accepts_other_schedulers_spellings() -> None:
    assert parse_bytes("1Gb", loose=True) == 10**9
    assert parse_bytes("500mb", loose=True) == 500 * 10**6
    assert parse_bytes("2gib", loose=True) == 2 * 2**30
    with pytest.raises(ValueError):
        parse_bytes("1parsec", loose=True)


@pytest.mark.parametrize(
    ("value", "milli"),
    [(1, 1000), (0.5, 500), ("2", 2000), ("0.25", 250), ("500m", 500), ("1m", 1), (0.0001, 1), ("1.5", 1500)],
)
def test_cpu(value: object, milli: int) -> None:
    assert parse_cpu(value) == milli


@pytest.mark.parametrize("bad", [0, "0m", -1, "lots", "1Gi", True, None, "500M"])
def test_cpu_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_cpu(bad)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30), ("30", 30), ("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("2000ms", 2)],
)
def test_duration(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("bad", ["soon", "1500ms", "5 m", "m5", "-5s", -1, 1.5, True, None, "", "1h 30m"])
def test_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (2**30, 512 * 2**20, 2048, 1000, 0)] == ["1Gi", "512Mi", "2Ki", "1000", "0"]
    assert all(parse_bytes(format_bytes(n)) == n for n in (1, 2**20, 3 * 2**30, 12345))
