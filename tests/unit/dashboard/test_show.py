"""`show` and `when_ago`: what the API answers, as a person reads it, never as a Python repr."""

from __future__ import annotations

from agora.dashboard.show import show, when_ago

DID = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"


def test_mappings_lists_and_nothing_read_as_words() -> None:
    assert show({"forged": 0, "replayed": 2}) == "forged: 0, replayed: 2"
    assert show({}) == "none" and show([]) == "none" and show(None) == "—"
    assert show(["a", "b"]) == "a, b" and show(True) == "yes" and show(0.25) == "0.25"
    nested = str(show({"limits": [{"name": "public", "hits": 3}], "replay": {"entries": 1}}))
    assert nested.startswith('<dl class="facts nested"><dt>limits</dt><dd><ul class="nested"><li>name: public')
    assert "{'" not in nested and "['" not in nested and "None" not in nested


def test_a_did_is_short_with_the_whole_one_in_its_title_and_text_is_escaped() -> None:
    assert str(show([DID])) == f'<code title="{DID}">did:key:z6MkiTBz…mDooWp</code>'
    assert str(show({"memo": "<b>'x'</b>"})) == "memo: &lt;b&gt;&#39;x&#39;&lt;/b&gt;"
    cause = f"{DID} committed at 64 until 1796329420"  # text that names a DID is kept whole
    assert str(show({"cause": cause})) == f"cause: {cause}"


def test_a_unix_time_is_utc_with_its_age() -> None:
    assert when_ago(1796327351, age_s=4.6) == "2026-12-03 19:49:11 UTC (4 s ago)"
    assert when_ago(1796327351, now=1796327351 + 3 * 3600 + 120) == "2026-12-03 19:49:11 UTC (3 h 2 min ago)"
    assert when_ago(None) == "—"
