"""Identification on real documents with the built-in types as the options: receipts,
invoices, FUNSD forms, generic PDFs (neither of the built-in types: the right answer is
"none of the options") and a business letter rendered here; a type taught from three example
texts; the null answer below the threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from extract_corpus import DATA, invoices, read, receipts

from docmill.extraction.builtin_types import builtin_types
from docmill.extraction.identifier import identify

THRESHOLD = 0.35  # the identify_threshold setting's default
FORMS = sorted((DATA / "forms").glob("funsd_*.png"))
LETTER_HTML = """<html><body style="font: 11pt serif; margin: 2cm">
<p>Northwind Traders Ltd<br>12 Harbour Road<br>Bristol BS1 4QA</p>
<p>14 March 2024</p>
<p>Ms Jane Porter<br>Porter &amp; Sons<br>8 Mill Lane<br>Leeds LS2 7EE</p>
<p><b>Subject: Renewal of our supply agreement</b></p>
<p>Dear Ms Porter,</p>
<p>Thank you for your letter of 2 March. We are pleased to confirm that we would like to
renew our agreement for a further two years on the terms we discussed at our meeting.
Our legal team will send the updated contract next week; please let me know if any of the
delivery dates need to change.</p>
<p>We value the partnership between our companies and look forward to working with you.</p>
<p>Yours sincerely,</p><p>Tom Baker<br>Purchasing Director</p>
</body></html>"""


def options(*extra: dict) -> list[dict]:
    return [{"code": t["codeType"], "name": t["name"], "description": t["description"],
             "schema": t["schema"], "keywords": t["keywords"], "examples": []}
            for t in builtin_types()] + list(extra)


@pytest.fixture(scope="module")
def letter_pdf(tmp_path_factory) -> Path:
    from weasyprint import HTML

    path = tmp_path_factory.mktemp("letter") / "letter.pdf"
    HTML(string=LETTER_HTML).write_pdf(path)
    return path


def test_builtin_types_accuracy(letter_pdf):
    cases = [(p, "receipt") for p in receipts(step=2)[:6]] + \
        [(p, "invoice") for p in invoices()] + \
        [(p, None) for p in FORMS[:3]] + \
        [(DATA / "pdf" / n, None) for n in ("minimal-document.pdf", "crazyones-pdfa.pdf",
                                            "libreoffice-form.pdf", "multicolumn.pdf")] + \
        [(letter_pdf, "letter")]
    wrong = []
    for path, expected in cases:
        result = identify(read(path), options(), THRESHOLD)
        if result["document_type_code"] != expected:
            wrong.append((path.name, expected, result["document_type_code"],
                          result["ranking"][:2]))
        assert [r["code"] for r in result["ranking"]].__len__() == 7
        assert result["ranking"] == sorted(result["ranking"], key=lambda r: -r["score"])
    accuracy = 1 - len(wrong) / len(cases)
    assert accuracy >= 0.95, wrong  # measured: all 21 right


def test_type_taught_from_three_examples_is_recognised():
    taught = {"code": "acme-field-report", "name": "Field report",
              "description": "", "schema": None, "keywords": [],
              "examples": [read(p).to_text() for p in FORMS[:3]]}
    for path in FORMS[3:7]:  # forms it has never seen
        result = identify(read(path), options(taught), THRESHOLD)
        assert result["document_type_code"] == "acme-field-report", result["ranking"][:3]
        assert result["confidence"] >= THRESHOLD
    # and the taught type does not swallow other documents
    receipt = identify(read(receipts()[0]), options(taught), THRESHOLD)
    assert receipt["document_type_code"] == "receipt"
    # wherever it stands among the options, with a one-field schema of its own
    with_schema = {**taught, "schema": {"type": "object", "properties": {
        "remarks": {"type": ["string", "null"]}}}}
    first = identify(read(FORMS[3]), [with_schema] + options(), THRESHOLD)
    assert first["document_type_code"] == "acme-field-report", first["ranking"][:3]


def test_below_threshold_is_none_of_the_options_with_scores():
    result = identify(read(DATA / "pdf" / "minimal-document.pdf"), options(), THRESHOLD)
    assert result["document_type_code"] is None
    assert len(result["ranking"]) == 7 and result["confidence"] < THRESHOLD
    some = [o for o in options() if o["code"] in ("id_document", "bank_statement")]
    receipt = identify(read(receipts()[0]), some, THRESHOLD)
    assert receipt["document_type_code"] is None
    assert {r["code"] for r in receipt["ranking"]} == {"id_document", "bank_statement"}
    assert all(0 <= r["score"] < THRESHOLD for r in receipt["ranking"])
    # the same document with its type among the options
    assert identify(read(receipts()[0]), options(), THRESHOLD)["document_type_code"] == \
        "receipt"


TINY_TYPES = [  # a handful of small user types, as an API test makes them
    {"code": "acme_invoice", "name": "Supplier invoice",
     "description": "An invoice from a supplier: invoice number, dates, amounts due, VAT",
     "schema": {"type": "object", "properties": {"invoice_number": {"type": ["string", "null"]},
                                                 "total": {"type": ["number", "null"]}}},
     "keywords": ["invoice", "invoice number", "bill to", "due date", "VAT"], "examples": []},
    {"code": "acme_receipt", "name": "Till receipt",
     "description": "A shop or restaurant till receipt: cash, change, items, total",
     "schema": {"type": "object", "properties": {"company": {"type": ["string", "null"]},
                                                 "date": {"type": ["string", "null"]},
                                                 "total": {"type": ["number", "null"]}}},
     "keywords": ["receipt", "cash", "change", "thank you"], "examples": []},
    {"code": "acme_totals", "name": "Totals", "description": "test",
     "schema": {"type": "object", "properties": {"date": {"type": ["string", "null"]},
                                                 "total": {"type": ["number", "null"]}}},
     "keywords": ["total"], "examples": []},
]


def test_tiny_user_types_do_not_outrank_the_builtin_type_that_fits():
    """A type with two fields and one keyword finds all of them in almost any invoice or
    receipt; it must not rank above the built-in type that explains far more of it."""
    cases = [(p, "invoice") for p in invoices()] + [(p, "receipt") for p in receipts(step=5)]
    wrong = []
    for path, expected in cases:
        result = identify(read(path), options(*TINY_TYPES), THRESHOLD)
        if result["document_type_code"] != expected:
            wrong.append((path.name, [(r["code"], r["score"]) for r in result["ranking"][:3]]))
    assert not wrong, wrong
