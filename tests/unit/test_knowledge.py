"""The knowledge-base ranking and index text, without a server (core/knowledge.py)."""

from __future__ import annotations

from docmill.core.knowledge import flatten, similarity, words

TEXT = "Configuring authentication: single sign-on with SAML and OAuth tokens"


def score(query: str, text: str = TEXT) -> float:
    return similarity(query, words(query), text)


def test_exact_beats_prefix_beats_typo_beats_nothing():
    exact, prefix, typo = score("authentication"), score("authent"), score("autentication")
    assert exact == 1.0
    assert exact > prefix > typo > 0.5
    assert score("zeppelin") == 0.0
    assert score("") == 0.0 and similarity("x", ["x"], "") == 0.0


def test_every_word_counts():
    assert score("saml tokens") > score("saml zeppelin") > 0
    assert 0 < score("saml zeppelin") < 0.6


def test_flatten_keeps_values_in_order_not_keys_or_booleans():
    content = {"title": "Invoice", "total": 12.5, "paid": True, "lines": [{"sku": "A-1"}],
               "empty": None}
    assert flatten(content) == "Invoice 12.5 A-1"
    assert words("Grüße, naïve_x 42") == ["grüße", "naïve", "x", "42"]
