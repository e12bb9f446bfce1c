"""Field models (`extraction/learned`): training a tiny one here, the model file, the shipped
models and their manifests, and what happens when a model cannot be used.

Documents are built from SROIE's own line annotations (transcripts at their boxes:
`extract_corpus.boxes_document`), so training takes well under a second and the test does not
depend on OCR. Everything is deterministic (LightGBM is run single-threaded, seeded).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from extract_corpus import boxes_document, receipt_truth, receipts

from docmill.documents import Document
from docmill.engines.extract.fields import extract_document, field_model
from docmill.errors import InvalidInput
from docmill.extraction.builtin_types import builtin_type
from docmill.extraction.extractor import extract
from docmill.extraction.learned.model import MODELS_DIR, FieldModel, ModelError, shipped_model
from docmill.extraction.learned.training import (
    Example,
    fit,
    prepare,
    score,
    scores_of,
    train_type,
    tune,
)
from docmill.extraction.schema import field_specs

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = builtin_type("receipt")["schema"]
FIELDS = ("company", "address", "date", "total")


@pytest.fixture(scope="module")
def prepared():
    return [prepare(Example(boxes_document(p), receipt_truth(p), p.stem), SCHEMA)
            for p in receipts()]


@pytest.fixture(scope="module")
def tiny(prepared):
    return fit(prepared[:14], field_specs(SCHEMA))


def test_a_tiny_model_learns_the_fields_from_a_few_documents(prepared, tiny):
    assert set(FIELDS) <= set(tiny.fields)
    specs = field_specs(SCHEMA)
    tune(tiny, specs, prepared[:14], scores_of(tiny, prepared[:14]))
    trained_on = score(tiny, specs, prepared[:14])
    held_out = score(tiny, specs, prepared[14:])
    # it fits what it saw (the misses left are annotation noise: the key says "D.I.Y." where
    # the line transcript says "D.T.Y."), and finds dates and totals on 6 it never saw
    assert sum(trained_on[f]["accuracy"] for f in FIELDS) / 4 >= 0.85, trained_on
    assert held_out["date"]["accuracy"] >= 0.8 and held_out["total"]["accuracy"] >= 0.8, \
        held_out


def test_extract_uses_the_model_and_says_so(tiny):
    document = boxes_document(receipts()[15])
    found = extract(document, SCHEMA, model=tiny)
    vias = {found["fields"][f]["via"] for f in FIELDS if f in found["fields"]}
    assert "model" in vias
    for f in FIELDS:
        entry = found["fields"].get(f)
        if entry and entry["via"] == "model":
            assert entry["page"] == 1 and len(entry["box"]) == 4 and 0 < entry["confidence"] <= 1


def test_the_model_file_round_trips(prepared, tiny):
    again = FieldModel.from_bytes(tiny.to_bytes())
    for p in prepared[14:]:
        for pointer, head in tiny.fields.items():
            cands = p.fields[pointer].cands
            assert again.fields[pointer].scores(cands) == pytest.approx(head.scores(cands))
    assert again.fields["total"].threshold == tiny.fields["total"].threshold


def test_the_joiner_learns_where_an_address_ends(prepared, tiny):
    """From pairs of neighbouring lines in 14 receipts: on the 6 others, going on from an
    address line to another one is more likely than going on to a line that is not."""
    head = tiny.fields["address"]
    assert head.joiner is not None and tiny.fields["total"].joiner is None
    inside, outside = [], []
    for p in prepared[14:]:
        rows = p.fields["address"]
        labelled = {c.order for c, lab in zip(rows.cands, rows.labels, strict=True) if lab}
        for (a, b), prob in head.joins(rows.cands).items():
            if a in labelled:
                (inside if b in labelled else outside).append(prob)
    assert inside and outside
    assert sum(inside) / len(inside) > sum(outside) / len(outside) + 0.2, (inside, outside)


def test_the_joiner_round_trips_and_ends_a_value(prepared, tiny):
    from docmill.extraction.learned.model import JOIN_OFF, predict_field

    again = FieldModel.from_bytes(tiny.to_bytes())
    rows = prepared[15].fields["address"]
    head = tiny.fields["address"]
    assert again.fields["address"].joins(rows.cands) == pytest.approx(head.joins(rows.cands))
    spec = next(s for s in field_specs(SCHEMA) if s.pointer == "address")
    scores = head.scores(rows.cands)
    # no extension at all: one line; the joiner alone (scores never extend) adds lines
    alone = predict_field(spec, rows.cands, scores, 0.0, 2.0, join=JOIN_OFF)
    joined = predict_field(spec, rows.cands, scores, 0.0, 2.0, joins=head.joins(rows.cands),
                           join=0.5)
    assert len(alone.cands) == 1 and len(joined.cands) > 1


@pytest.mark.parametrize("damage", ["truncate", "not-gzip", "other-json", "bad-booster"])
def test_a_damaged_model_is_a_clear_error(tiny, tmp_path, damage):
    data = tiny.to_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "not-gzip":
        data = b"PK\x03\x04 not a model"
    elif damage == "other-json":
        data = gzip.compress(json.dumps({"format": "something-else"}).encode())
    else:
        body = json.loads(gzip.decompress(data))
        body["fields"]["total"]["booster"] = "tree\nnonsense"
        data = gzip.compress(json.dumps(body).encode())
    path = tmp_path / "receipt.model.gz"
    path.write_bytes(data)
    with pytest.raises(ModelError):
        FieldModel.load(path)
    # a job's extraction then falls back to the rules, with a warning, and still answers
    model, source, warnings = field_model(None, str(path))
    assert model is None and source is None
    assert warnings and "could not be used" in warnings[0]
    found = extract_document(boxes_document(receipts()[0]), SCHEMA, None, False, model)
    assert found["data"]["total"] is not None


def test_a_missing_taught_model_falls_back_with_a_warning():
    model, _source, warnings = field_model(None, "")
    assert model is None and "gone" in warnings[0]


def test_a_damaged_shipped_model_falls_back(tiny, tmp_path, monkeypatch):
    (tmp_path / "receipt.model.gz").write_bytes(tiny.to_bytes()[:100])
    monkeypatch.setenv("DOCMILL_EXTRACT_MODELS_DIR", str(tmp_path))
    from docmill.settings import get_settings

    get_settings.cache_clear()
    try:
        model, _source, warnings = field_model("receipt", None)
    finally:
        monkeypatch.delenv("DOCMILL_EXTRACT_MODELS_DIR")
        get_settings.cache_clear()
    assert model is None and "'receipt'" in warnings[0]


def test_train_type_refuses_malformed_training_sets():
    with pytest.raises(InvalidInput):
        train_type({"schema": SCHEMA})
    with pytest.raises(InvalidInput):
        train_type({"schema": SCHEMA, "examples": [{"expected": {}, "document": {"x": 1}}] * 3})
    with pytest.raises(InvalidInput):
        train_type({"schema": {"type": "string"}, "examples": []})


def test_train_type_reports_cross_validated_quality():
    examples = [{"name": p.stem, "expected": receipt_truth(p),
                 "document": boxes_document(p).to_dict()} for p in receipts()[:12]]
    schema = {"type": "object", "properties": {
        "total": {"type": "number"}, "date": {"type": "string", "format": "date"}}}
    model, report = train_type({"schema": schema, "examples": examples}, folds=3)
    assert report["examples"] == 12 and set(report["fields"]) == {"total", "date"}
    for field in ("total", "date"):
        q = report["quality"][field]
        labelled = sum(1 for e in examples if str(e["expected"][field]).strip())
        assert q["documents"] == labelled and 0 <= q["accuracy"] <= 1 and q["learned"]
    assert model.trained["folds"] == 3


def test_documents_round_trip_through_json():
    document = boxes_document(receipts()[0])
    again = Document.from_dict(json.loads(json.dumps(document.to_dict())))
    assert again.to_dict() == document.to_dict()
    with pytest.raises(ValueError):
        Document.from_dict({"format": "docmill.document/1", "pages": [{"page": 1}]})
    with pytest.raises(ValueError):
        Document.from_dict(["not", "a", "document"])


@pytest.mark.parametrize("code", ["receipt", "invoice"])
def test_shipped_models_load_within_budget_and_name_their_documents(code):
    path = MODELS_DIR / f"{code}.model.gz"
    if code == "invoice" and not path.exists():
        pytest.skip("no invoice model shipped")
    assert path.stat().st_size <= 20 * 1024 * 1024
    model = shipped_model(code)
    assert model is not None and model.fields
    manifest = json.loads((ROOT / "training" / f"{code}.manifest.json").read_text())
    parts = manifest["documents"]
    train, validation, test = (set(parts[p]) for p in ("train", "validation", "test"))
    assert train and not (train & test) and not (validation & test) and not (train & validation)
    names = train | validation | test
    if code == "receipt":
        assert all(int(n) < 400 for n in names), "SROIE 400-625 are reserved"
    reserved = ("SammyMaystoneLinesTest", "coolblue2", "oyo", "saeco")
    assert not any(n.rsplit("/", 1)[-1] in reserved for n in names)


def test_a_builtin_schema_sent_without_its_code_gets_the_shipped_model():
    from docmill.engines.extract.fields import builtin_code_of

    assert builtin_code_of(SCHEMA) == "receipt"
    assert builtin_code_of({"type": "object", "properties": {"total": {"type": "number"}}}) \
        is None
    model, source, warnings = field_model(builtin_code_of(SCHEMA), None)
    assert source == "shipped" and model is shipped_model("receipt") and not warnings


def test_out_of_fold_scores_carry_their_folds_own_lexicon(prepared, tiny):
    """Cross-validated quality must come from models that never saw the document: the
    known values a held-out document is decided with are those of the fold's model, never
    the final model's (which holds the document's own label)."""
    from docmill.extraction.learned.candidates import alnum
    from docmill.extraction.learned.training import scored_by

    final = fit(prepared, field_specs(SCHEMA))
    unseen = [p for p in prepared[14:]
              if alnum(p.fields["company"].expected) not in
              {alnum(v) for v in tiny.fields["company"].lexicon}]
    assert unseen
    for p in unseen:
        own = alnum(p.fields["company"].expected)
        scored = scored_by(tiny.fields["company"], p.fields["company"])
        assert own not in {alnum(v) for v in scored.lexicon}
        assert own in {alnum(v) for v in final.fields["company"].lexicon}


def test_an_address_never_takes_the_lines_of_the_name(prepared, tiny):
    from docmill.extraction.learned.model import predict_field

    spec = next(s for s in field_specs(SCHEMA) if s.pointer == "address")
    for p in prepared[14:]:
        rows = p.fields["address"]
        scores = tiny.fields["address"].scores(rows.cands)
        free = predict_field(spec, rows.cands, scores, 0.0, 0.0)  # every neighbour joins
        assert free is not None and len(free.cands) > 1
        best = rows.cands[max(range(len(rows.cands)), key=scores.__getitem__)]
        held = frozenset(c.order for c in rows.cands) - {best.order}
        # every other line is another field's: the address stops at its best line
        kept = predict_field(spec, rows.cands, scores, 0.0, 0.0, taken=held)
        assert kept is not None and [c.order for c in kept.cands] == [best.order]
    # and `extract` decides the name first: no line is in both
    for path in receipts()[14:]:
        found = extract(boxes_document(path), SCHEMA, model=tiny)
        boxes = {f: found["fields"][f].get("box") for f in ("company", "address")
                 if found["fields"].get(f, {}).get("via") == "model"}
        if len(boxes) == 2:
            assert found["data"]["company"] not in found["data"]["address"], found["data"]


def test_full_width_forms_are_read_as_their_ascii_letters():
    from docmill.documents import Block, Box, Line, Page, Word
    from docmill.extraction.layout import Layout

    words = [Word("AEON", Box(0, 0, 40, 10)), Word("BHD", Box(45, 0, 70, 10)),
             Word("（126926-H）", Box(75, 0, 150, 10))]
    layout = Layout.of(Document([Page(1, 200.0, 100.0, "ocr", [Block("text", [Line(words)])])]))
    seg = layout.segs[0]
    assert seg.text == "AEON BHD (126926-H)"
    assert seg.text[seg.offsets[2][0]:seg.offsets[2][1]] == "(126926-H)"


@pytest.mark.parametrize("label, iso", [
    ("20180304", "2018-03-04"),  # SROIE keys print some dates as yyyymmdd ...
    ("25032018", "2018-03-25"),  # ... or ddmmyyyy
    ("(06/12/2016)", "2016-12-06"),  # with the brackets the receipt printed around it
    ("05-02-18", "2018-02-05"),
    ("2018-03-04", "2018-03-04"),
    ("12345678", None),
])
def test_labelled_dates_are_read_as_the_dates_they_are(label, iso):
    from docmill.extraction.learned.matching import as_date

    assert as_date(label) == iso


def _receipt_lines(*texts: str) -> Document:
    from docmill.documents import Block, Box, Line, Page, Word

    lines = []
    for row, text in enumerate(texts):
        words, x = [], 10.0
        for piece in text.split():
            words.append(Word(piece, Box(x, 20.0 * row, x + 8 * len(piece), 20.0 * row + 10)))
            x += 8 * len(piece) + 6
        lines.append(Line(words))
    return Document([Page(1, 400.0, 20.0 * len(texts) + 20, "ocr", [Block("text", lines)])])


@pytest.mark.parametrize("rounding_line, paid_line, expected", [
    # the page rounds cash: the rounded total is what was paid
    ("Rounding Adj -0.01", "Total Rounded 112.45", 112.45),
    ("Rounding -0.01", "Net Total 112.45", 112.45),
    # no rounding line: the amount stays as the model chose it
    ("Discount 0.01", "Net Total 112.45", 112.46),
    # a rounding line, but the rounded amount is not printed
    ("Rounding Adj -0.01", "Thank you", 112.46),
    # the label and its amount in two columns, read as two lines
    ("Rounding:RM", "-0.01 25.45 112.45", 112.45),
])
def test_cash_rounding_takes_the_rounded_total_the_page_prints(rounding_line, paid_line,
                                                               expected):
    from docmill.extraction.layout import Layout
    from docmill.extraction.learned.candidates import DocContext
    from docmill.extraction.learned.model import candidates, predict_field

    spec = next(s for s in field_specs(SCHEMA) if s.pointer == "total")
    layout = Layout.of(_receipt_lines("Total Incl GST 112.46", rounding_line, paid_line,
                                      "Cash 200.00", "Change 87.54"))
    ctx = DocContext.of(layout, {}, {})
    cands = candidates(layout, spec, ctx, False)
    scores = [1.0 if abs(float(c.value) - 112.46) < 0.005 else 0.1 for c in cands]
    plain = predict_field(spec, cands, scores, 0.5, 0.5)
    rounded = predict_field(spec, cands, scores, 0.5, 0.5, cash_rounding=ctx.rounds_cash)
    assert plain is not None and float(plain.value) == pytest.approx(112.46)
    assert rounded is not None and float(rounded.value) == pytest.approx(expected)


def test_cash_rounding_is_tuned_and_kept_in_the_model_file(prepared, tiny):
    """Tuning sets the option only for amounts, and only when it gets more documents right;
    the file keeps it."""
    specs = field_specs(SCHEMA)
    tune(tiny, specs, prepared[:14], scores_of(tiny, prepared[:14]))
    assert all(not h.cash_rounding for p, h in tiny.fields.items() if h.kind != "amount")
    tiny.fields["total"].cash_rounding = True
    again = FieldModel.from_bytes(tiny.to_bytes())
    assert again.fields["total"].cash_rounding and not again.fields["date"].cash_rounding
    tiny.fields["total"].cash_rounding = False


@pytest.mark.parametrize("read, meant", [
    ("URBAN 1DEA SDN BHD", "URBAN IDEA SDN BHD"),  # a 1 opening a word of letters
    ("KMF F0ODICIOUS SDN BHD", "KMF FOODICIOUS SDN BHD"),  # a 0 between letters
    ("TSH POWER HARDWÀRE TRADING", "TSH POWER HARDWARE TRADING"),  # an accent OCR added
    # digits that belong where they are stay
    ("OLIVE9 PHARMACY", "OLIVE9 PHARMACY"), ("NO1, JALAN SS21/39", "NO1, JALAN SS21/39"),
    ("CT281 - TEALIVE", "CT281 - TEALIVE"), ("1-UTAMA, JLN PJU 1A/3", "1-UTAMA, JLN PJU 1A/3"),
])
def test_shape_fix_undoes_what_ocr_makes_of_letters(read, meant):
    from docmill.extraction.learned.model import shape_fixed

    assert shape_fixed(read) == meant


def test_shape_fix_is_tuned_for_text_only_and_kept_in_the_model_file(prepared, tiny):
    specs = field_specs(SCHEMA)
    tune(tiny, specs, prepared[:14], scores_of(tiny, prepared[:14]))
    assert all(not h.fix_shapes for h in tiny.fields.values()
               if h.kind not in ("organization", "address", "person", "text"))
    before = tiny.fields["company"].fix_shapes
    tiny.fields["company"].fix_shapes = True
    again = FieldModel.from_bytes(tiny.to_bytes())
    assert again.fields["company"].fix_shapes and not again.fields["total"].fix_shapes
    tiny.fields["company"].fix_shapes = before


def test_runs_around_the_best_lines_stay_short_on_one_page_and_off_taken_lines():
    from docmill.extraction.layout import Layout
    from docmill.extraction.learned.candidates import DocContext
    from docmill.extraction.learned.model import candidates
    from docmill.extraction.learned.spans import MAX_LINES, line_table, runs_around

    spec = next(s for s in field_specs(SCHEMA) if s.pointer == "address")
    layout = Layout.of(_receipt_lines(*(f"LINE {n} JALAN" for n in range(12))))
    cands = candidates(layout, spec, DocContext.of(layout, {}, {}), False)
    lines = line_table(cands, [0.9 if c.order == 5 else 0.1 for c in cands])
    runs = runs_around(lines, [5])
    assert (5, 5) in runs and (0, 5) in runs and (5, 10) in runs
    assert all(s <= 5 <= e and e - s < MAX_LINES for s, e in runs)
    assert (0, 4) not in runs and (4, 10) not in runs
    # line 3 belongs to the name: no run goes through it, the anchor's own line may be taken
    held = runs_around(lines, [5, 1], taken=frozenset({3, 5}))
    assert all(not (s <= 3 <= e) for s, e in held) and (4, 5) in held and (1, 2) in held


def test_a_run_is_positive_when_it_spells_the_label_best():
    from docmill.extraction.layout import Layout
    from docmill.extraction.learned.candidates import DocContext
    from docmill.extraction.learned.model import candidates
    from docmill.extraction.learned.spans import (
        candidate_runs,
        line_table,
        run_text,
        span_rows,
    )

    spec = next(s for s in field_specs(SCHEMA) if s.pointer == "address")
    layout = Layout.of(_receipt_lines("SYARIKAT ABC SDN BHD", "NO 12 JALAN MERANTI",
                                      "TAMAN SRI", "43000 KAJANG", "TEL 03-8736 1234",
                                      "TOTAL 12.00"))
    cands = candidates(layout, spec, DocContext.of(layout, {}, {}), False)
    lines = line_table(cands, [0.8 if 1 <= c.order <= 2 else 0.1 for c in cands])
    expected = "NO 12, JALAN MERANTI, TAMAN SRI, 43000 KAJANG"
    xs, ys = span_rows(lines, {}, (1, 2), expected)
    runs, feats = candidate_runs(lines, {}, (1, 2))
    assert len(xs) == len(runs) and feats == xs and sum(ys) == 1
    assert run_text(lines, *runs[ys.index(1)]).startswith("NO 12 JALAN MERANTI")
    assert runs[ys.index(1)] == (1, 3)
    # nothing close to the label: no positive at all
    assert sum(span_rows(lines, {}, (1, 2), "LOT 5 PERSIARAN KLANG")[1]) == 0


def test_the_spanner_learns_runs_and_round_trips_in_the_model_file(prepared, tiny):
    """A spanner fitted on the runs of 20 receipts (the tiny model's scores) chooses runs
    that spell the address at least as often as the greedy extension, the model file keeps
    it, and a spanner of other features is a clear error."""
    from docmill.extraction.learned.model import predict_field
    from docmill.extraction.learned.spans import fit_spanner, line_table, span_rows

    spec = next(s for s in field_specs(SCHEMA) if s.pointer == "address")
    head = tiny.fields["address"]
    xs, ys = [], []
    for p in prepared:
        rows = p.fields["address"]
        scores = head.scores(rows.cands)
        greedy = predict_field(spec, rows.cands, scores, 0.0, head.extend)
        orders = [c.order for c in greedy.cands]
        x, y = span_rows(line_table(rows.cands, scores), {}, (min(orders), max(orders)),
                         rows.expected)
        xs += x
        ys += y
    spanner = fit_spanner(xs, ys)
    assert spanner is not None and sum(ys) >= 20
    from docmill.extraction.learned.matching import same

    def right(use: bool) -> int:
        return sum(same(spec, p.fields["address"].expected, predict_field(
            spec, p.fields["address"].cands, head.scores(p.fields["address"].cands), 0.0,
            head.extend, spanner=spanner if use else None).value) for p in prepared)

    assert right(True) >= right(False) and right(True) >= 14
    head.spanner, head.use_spans = spanner, True
    try:
        blob = tiny.to_bytes()
        again = FieldModel.from_bytes(blob).fields["address"]
        assert again.use_spans and again.spanner is not None
        rows = prepared[3].fields["address"]
        scores = head.scores(rows.cands)
        assert predict_field(spec, rows.cands, scores, 0.0, head.extend,
                             spanner=again.spanner).value == \
            predict_field(spec, rows.cands, scores, 0.0, head.extend, spanner=spanner).value
        body = json.loads(gzip.decompress(blob))
        body["span_features"] = body["span_features"][:-1]
        with pytest.raises(ModelError, match="spanner of another version"):
            FieldModel.from_bytes(gzip.compress(json.dumps(body).encode()))
    finally:
        head.spanner, head.use_spans = None, False



def test_cross_validation_fits_spanners_that_never_saw_the_document(prepared):
    """Each document's runs are chosen, while tuning, by a spanner fitted on the other folds
    only; the model gets one fitted on every fold, and tuning records whether it decides."""
    from docmill.extraction.learned.spans import Memoized
    from docmill.extraction.learned.training import cross_validate

    captured = {}
    import docmill.extraction.learned.training as training

    real = training.tune_spans

    def spy(model, specs, prepared_, table):
        captured["table"] = table
        real(model, specs, prepared_, table)

    # 20 receipts are too few runs for a spanner per fold: each one twice, its copy at an
    # index of the same parity, so in the same one of the 2 folds (no copy crosses folds)
    docs = list(prepared) * 2
    training.tune_spans = spy
    try:
        quality, model = cross_validate(docs, field_specs(SCHEMA), folds=2)
    finally:
        training.tune_spans = real
    head = model.fields["address"]
    assert head.spanner is not None and model.fields["total"].spanner is None
    table = captured["table"]
    assert all(isinstance(table[(i, "address")].spanner, Memoized) for i in range(len(docs)))
    folds = [{id(table[(i, "address")].spanner.booster) for i in range(f, len(docs), 2)}
             for f in (0, 1)]
    # one spanner per fold, fitted on the other fold, neither of them the final one
    assert all(len(f) == 1 for f in folds) and folds[0] != folds[1]
    assert id(head.spanner) not in folds[0] | folds[1]
    assert 0 <= quality["address"]["accuracy"] <= 1
    assert FieldModel.from_bytes(model.to_bytes()).fields["address"].use_spans == head.use_spans
