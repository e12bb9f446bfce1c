"""The expert.ai face's HTTP-free parts: word packing against the vendor's own sample, the
result built from a native document, and the token encodings the official client needs."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from docmill.faces.expertai import tokens
from docmill.faces.expertai.render import build_result, pack_words, unpack_words
from docmill.settings import get_settings

VENDOR_SAMPLE = "H4sIAK+FKGIC/ytJLS5hYGJgYEgB4lQgrgHiIiAGAEjL9hsZAAAA"


def test_packing_reproduces_the_vendor_sample():
    assert pack_words([("test", 2, (100, 101, 124, 114))], mtime=0x622885AF) == VENDOR_SAMPLE
    assert unpack_words(VENDOR_SAMPLE) == [("test", 2, (100, 101, 124, 114))]


def test_records_are_joined_by_four_zero_bytes_and_empty_pages_decode_empty():
    records = [("è", 3, (1, 2, 3, 4)), ("ß", 4, (5, 6, 7, 8))]
    raw = gzip.decompress(base64.b64decode(pack_words(records, mtime=0)))
    first = "è".encode() + b"\x00" + bytes.fromhex("03000000" "01000000" "02000000"
                                                    "03000000" "04000000")
    assert raw.startswith(first + b"\x00" * 4) and not raw.endswith(b"\x00" * 4)
    assert unpack_words(pack_words(records, mtime=0)) == [(t, p, b) for t, p, b in records]
    tight = gzip.decompress(base64.b64decode(pack_words(records, mtime=0, separator=False)))
    assert len(tight) == len(raw) - 4
    assert gzip.decompress(base64.b64decode(pack_words([], mtime=0))) == b""


def _word(text, box):
    return {"text": text, "bbox": box, "confidence": 1.0}


def test_result_from_a_native_document():
    document = {"metadata": {"Title": "T", "Producer": "P"}, "pages": [
        {"page": 1, "width": 612, "height": 792, "error": None, "blocks": [
            {"type": "title", "bbox": [72, 72, 200, 90], "text": "Big title",
             "lines": [{"bbox": [72, 72, 200, 90], "text": "Big title",
                        "words": [_word("Big", [72, 72, 120, 90]),
                                  _word("title", [125, 72, 200, 90])]}]},
            {"type": "table", "bbox": [72, 100, 300, 140], "text": "A\tB", "table": {
                "rows": 1, "columns": 2, "cells": [
                    {"row": 0, "column": 0, "row_span": 1, "col_span": 2, "is_header": True,
                     "bbox": [72, 100, 300, 140], "text": "A",
                     "lines": [{"bbox": [72, 100, 90, 120], "text": "A",
                                "words": [_word("A", [72, 100, 90, 120])]}]}]}},
            {"type": "footer", "bbox": [600, 780, 640, 800], "text": "1",
             "lines": [{"bbox": [600, 780, 640, 800], "text": "1",
                        "words": [_word("1", [600, 780, 640, 800])]}]}]},
        {"page": 2, "width": 612, "height": 792, "error": "bad page", "blocks": []}]}
    result = build_result(document, name="n.pdf", finished=None, version="v")
    header = result["header"]
    assert header["totPages"] == 2 and header["errorPages"] == 1
    assert header["customInfo"] == {"Title": "T", "Producer": "P"}
    layout = result["layout"]
    assert [el["type"] for el in layout] == ["page", "title", "table", "cell", "footer", "page"]
    assert [el["id"] for el in layout] == [1, 2, 3, 4, 5, 6]
    assert layout[0]["children"] == [2, 3, 5] and layout[2]["children"] == [4]
    assert layout[1]["content"] == "Big title\n" and "content" not in layout[2]
    assert layout[3] == {"id": 4, "page": 1, "type": "cell", "bbox": [100, 139, 417, 194],
                         "parent": 3, "content": "A\n", "row": 0, "column": 0,
                         "isHead": True, "span": [1, 2]}
    assert unpack_words(result["words"][0]) == [
        ("Big", 2, (100, 100, 167, 125)), ("title", 2, (174, 100, 278, 125)),
        ("A", 4, (100, 139, 125, 167)),
        ("1", 5, (833, 1083, 850, 1100))]  # clamped to the 850 x 1100 page
    assert unpack_words(result["words"][1]) == []
    assert layout[5]["bbox"] == [0, 0, 850, 1100]


@pytest.fixture
def secret(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCMILL_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    tokens._secret.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    tokens._secret.cache_clear()


def test_token_payloads_decode_with_standard_base64(secret):
    for _ in range(200):
        token = tokens.issue_token("key-id")
        payload = token.split(".")[1]
        assert "-" not in payload and "_" not in payload
        claims = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
        assert type(claims["exp"]) is int
        assert tokens.key_id_of(token) == "key-id"
    assert (secret / tokens.SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert tokens.key_id_of(token + "x") is None
    assert tokens.key_id_of(tokens.issue_token("k", now=0)) is None  # long expired


def test_refused_task_ids_belong_to_one_organization(secret):
    task_id = tokens.refused_task_id("org-a", "text/plain")
    assert all(c.isalnum() or c in "-._~" for c in task_id)
    assert tokens.refusal_of(task_id, "org-a") == "text/plain"
    assert tokens.refusal_of(task_id, "org-b") is None
    assert tokens.key_id_of(task_id) is None  # not a bearer token either
    assert tokens.refusal_of(tokens.issue_token("k"), "org-a") is None
