"""Fitting field models from labelled documents, and measuring them honestly.

`prepare` reads one labelled document into candidates with labels (the rules run first: their
answers are features, and the fallback); `fit` trains one LightGBM classifier per field;
`tune` picks each field's acceptance threshold (and, for multi-line text, the threshold for
adding a neighbouring line) on documents the boosters were not fitted on; `score` measures
field accuracy of model-with-fallback against rules alone. `cross_validate` does all of it in
k folds for a taught type, so the quality it reports comes from documents each fold did not
train on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from docmill.documents import Document
from docmill.extraction.layout import Layout
from docmill.extraction.learned.candidates import (
    LINE_KINDS,
    MULTILINE_KINDS,
    SKIPPED_KINDS,
    Cand,
    DocContext,
)
from docmill.extraction.learned.joining import fit_joiner, training_rows
from docmill.extraction.learned.matching import expected_value, is_empty, positives, same
from docmill.extraction.learned.model import (
    _TOKEN,
    JOIN_OFF,
    FieldHead,
    FieldModel,
    Prediction,
    candidates,
    claims_lines,
    label_scores,
    matrix,
    predict_field,
    yields_lines,
)
from docmill.extraction.learned.spans import Memoized, fit_spanner, line_table, span_rows
from docmill.extraction.schema import FieldSpec, field_specs

THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
EXTENDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
JOINS = (0.3, 0.5, 0.7, 0.9, JOIN_OFF)  # the joiner's threshold (JOIN_OFF: not used)
RATIOS = (0.0, 88.0, 92.0, 95.0)  # lexicon closeness tried (0: no lexicon)


@dataclass
class Example:
    document: Document
    expected: dict[str, Any]
    name: str = ""


@dataclass
class FieldRows:
    cands: list[Cand]
    labels: list[bool]
    expected: Any
    rule_value: Any
    rounds_cash: bool = False  # DocContext.rounds_cash of the document


@dataclass
class Prepared:
    name: str
    fields: dict[str, FieldRows] = field(default_factory=dict)


def trainable(specs: Sequence[FieldSpec]) -> list[FieldSpec]:
    """Scalar fields outside arrays: line items stay with the table reader."""
    return [s for s in specs if "array" not in s.types and s.kind not in SKIPPED_KINDS]


def prepare(example: Example, schema: dict[str, Any]) -> Prepared:
    from docmill.extraction.extractor import _month_first, extract, scalar_specs
    from docmill.extraction.labels import _label_hits

    layout = Layout.of(example.document)
    rules = extract(example.document, schema, layout, model=None)
    specs = trainable(field_specs(schema))
    hits = _label_hits(layout, scalar_specs(field_specs(schema)))  # as extract() finds them
    ctx = DocContext.of(layout, rules["fields"], label_scores(hits))
    month_first = _month_first(layout)
    out = Prepared(example.name)
    for spec in specs:
        cands = candidates(layout, spec, ctx, month_first)
        expected = expected_value(example.expected, spec)
        out.fields[spec.pointer] = FieldRows(cands, positives(spec, expected, cands), expected,
                                             expected_value(rules["data"], spec),
                                             ctx.rounds_cash)
    return out


def _params(n_docs: int) -> dict[str, Any]:
    small = n_docs < 60
    return {"objective": "binary", "learning_rate": 0.05, "num_leaves": 7 if small else 15,
            "min_data_in_leaf": 3 if small else 10, "feature_fraction": 0.8,
            "bagging_fraction": 0.9, "bagging_freq": 1, "lambda_l2": 1.0,
            "min_sum_hessian_in_leaf": 1e-3, "verbose": -1, "num_threads": 1, "seed": 7,
            "deterministic": True, "force_row_wise": True}


def fit(prepared: Sequence[Prepared], specs: Sequence[FieldSpec], rounds: int | None = None,
        progress: Callable[[int, int], None] | None = None) -> FieldModel:
    """One booster per field that has labelled positives in at least two documents."""
    import lightgbm

    heads: dict[str, FieldHead] = {}
    todo = trainable(specs)
    for n, spec in enumerate(todo):
        docs = [p.fields[spec.pointer] for p in prepared if spec.pointer in p.fields]
        if sum(any(d.labels) for d in docs) < 2:
            continue
        freq: dict[str, int] = {}
        for d in docs:
            for tok in {t for c in d.cands for t in c.tokens}:
                freq[tok] = freq.get(tok, 0) + 1
        min_df = 2 if len(docs) < 100 else 3
        kept = sorted((t for t, f in freq.items() if f >= min_df), key=lambda t: (-freq[t], t))
        vocab = {t: i for i, t in enumerate(sorted(kept[:3000]))}
        cands = [c for d in docs for c in d.cands]
        labels = [lab for d in docs for lab in d.labels]
        if not cands:
            continue
        data = lightgbm.Dataset(matrix(cands, vocab), label=[int(x) for x in labels],
                                params={"verbose": -1})
        booster = lightgbm.train(_params(len(docs)), data,
                                 num_boost_round=rounds or (120 if len(docs) < 60 else 300))
        lexicon = sorted({str(d.expected).strip() for d in docs
                          if isinstance(d.expected, str) and d.expected.strip()}) \
            if spec.kind in LINE_KINDS else []
        words: dict[str, int] = {}
        for value in lexicon:
            for word in _TOKEN.findall(value.upper()):
                words[word] = words.get(word, 0) + 1
        heads[spec.pointer] = FieldHead(spec.kind, vocab, booster, lexicon=lexicon,
                                        words=words)
        if spec.kind in MULTILINE_KINDS:
            xs: list[list[float]] = []
            ys: list[int] = []
            for d in docs:
                x, y = training_rows(d.cands, d.labels)
                xs += x
                ys += y
            heads[spec.pointer].joiner = fit_joiner(xs, ys)
        if progress:
            progress(n + 1, len(todo))
    return FieldModel(heads)


@dataclass
class Scored:
    """A document's candidates as one field head saw them: its booster's scores, its
    joiner's probabilities, and the known values it was fitted with. Out-of-fold decisions
    must use the fold's own lexicon: the final model's holds the document's own label, which
    would make cross-validated quality (and the lexicon closeness tuned on it) look better
    than it is."""

    scores: list[float]
    joins: dict[tuple[int, int], float]
    lexicon: list[str]
    words: dict[str, int]
    spanner: Any = None  # fitted on other folds' documents only, like the booster


def _predict(head: FieldHead, spec: FieldSpec, rows: FieldRows, scored: Scored | None,
             threshold: float, extend: float,
             lexicon_ratio: float | None = None,
             fix_words: bool | None = None, join: float | None = None,
             taken: frozenset[int] = frozenset(),
             cash_rounding: bool | None = None,
             fix_shapes: bool | None = None,
             use_spans: bool | None = None) -> Prediction | None:
    if scored is None:
        return None
    fix = head.fix_words if fix_words is None else fix_words
    spans = head.use_spans if use_spans is None else use_spans
    return predict_field(spec, rows.cands, scored.scores, threshold, extend, scored.lexicon,
                         head.lexicon_ratio if lexicon_ratio is None else lexicon_ratio,
                         scored.words if fix else None, scored.joins,
                         head.join if join is None else join, taken,
                         rows.rounds_cash and (head.cash_rounding if cash_rounding is None
                                               else cash_rounding),
                         head.fix_shapes if fix_shapes is None else fix_shapes,
                         scored.spanner if spans else None)


def _decide(head: FieldHead, spec: FieldSpec, rows: FieldRows, scored: Scored | None,
            threshold: float, extend: float,
            lexicon_ratio: float | None = None,
            fix_words: bool | None = None, join: float | None = None,
            taken: frozenset[int] = frozenset(), cash_rounding: bool | None = None,
            fix_shapes: bool | None = None, use_spans: bool | None = None) -> Any:
    found = _predict(head, spec, rows, scored, threshold, extend, lexicon_ratio, fix_words,
                     join, taken, cash_rounding, fix_shapes, use_spans)
    return found.value if found is not None else rows.rule_value


def _taken(model: FieldModel, specs: Sequence[FieldSpec], prepared: Sequence[Prepared],
           table: ScoreTable | None) -> list[frozenset[int]]:
    """Per document, the lines the names (organization, person) took as `apply` decides
    them, with their heads' current thresholds: an address is decided after them."""
    by_pointer = {s.pointer: s for s in specs}
    out = []
    for i, p in enumerate(prepared):
        lines: set[int] = set()
        for pointer, head in model.fields.items():
            spec, rows = by_pointer.get(pointer), p.fields.get(pointer)
            if spec is None or rows is None or not claims_lines(spec):
                continue
            scored = table.get((i, pointer)) if table is not None else scored_by(head, rows)
            found = _predict(head, spec, rows, scored, head.threshold, head.extend)
            if found is not None:
                lines |= {c.order for c in found.cands}
        out.append(frozenset(lines))
    return out


ScoreTable = dict[tuple[int, str], Scored]  # (document index, pointer) -> scored


def scored_by(head: FieldHead, rows: FieldRows) -> Scored:
    return Scored(head.scores(rows.cands), head.joins(rows.cands), head.lexicon, head.words,
                  head.spanner)


def scores_of(model: FieldModel, prepared: Sequence[Prepared]) -> ScoreTable:
    out: ScoreTable = {}
    for i, p in enumerate(prepared):
        for pointer, head in model.fields.items():
            rows = p.fields.get(pointer)
            if rows is not None:
                out[(i, pointer)] = scored_by(head, rows)
    return out


def tune(model: FieldModel, specs: Sequence[FieldSpec], prepared: Sequence[Prepared],
         table: ScoreTable) -> None:
    """Sets each head's thresholds to those that score best on `prepared` (ties: higher)."""
    by_pointer = {s.pointer: s for s in specs}
    addresses = [p for p in model.fields if yields_lines(by_pointer[p])]
    # names first: the lines they take, once tuned, are kept out of an address (`apply`'s
    # order)
    for pointer, head in model.fields.items():
        if pointer not in addresses:
            _tune_head(head, by_pointer[pointer], prepared, table, [])
    taken = _taken(model, specs, prepared, table) if addresses else []
    for pointer in addresses:
        _tune_head(model.fields[pointer], by_pointer[pointer], prepared, table, taken)


def _tune_head(head: FieldHead, spec: FieldSpec, prepared: Sequence[Prepared],
               table: ScoreTable, taken: list[frozenset[int]]) -> None:
    pointer = spec.pointer

    def hits(threshold: float, extend: float, **options: Any) -> int:
        return sum(same(spec, p.fields[pointer].expected,
                        _decide(head, spec, p.fields[pointer], table.get((i, pointer)),
                                threshold, extend, taken=_held(spec, taken, i), **options))
                   for i, p in enumerate(prepared) if pointer in p.fields)

    multiline = spec.kind in MULTILINE_KINDS
    extends = EXTENDS if multiline else (0.5,)
    joins = JOINS if multiline and head.joiner is not None else (JOIN_OFF,)
    best = (-1, 0.0, 0.0, JOIN_OFF)
    for thr in THRESHOLDS:
        for ext in extends:
            for join in joins:
                n = hits(thr, ext, join=join)
                if n > best[0] or (n == best[0] and (thr, join) >= best[1::2]):
                    best = (n, thr, ext, join)
    head.threshold, head.extend, head.join = best[1], best[2], best[3]
    if head.lexicon:
        head.lexicon_ratio = max(RATIOS, key=lambda r: (
            hits(head.threshold, head.extend, lexicon_ratio=r), -r))
        head.fix_words = hits(head.threshold, head.extend, fix_words=True) > \
            hits(head.threshold, head.extend, fix_words=False)
    if spec.kind in LINE_KINDS:
        head.fix_shapes = hits(head.threshold, head.extend, fix_shapes=True) > \
            hits(head.threshold, head.extend, fix_shapes=False)
    if spec.kind == "amount":
        head.cash_rounding = hits(head.threshold, head.extend, cash_rounding=True) > \
            hits(head.threshold, head.extend, cash_rounding=False)


def add_spanners(model: FieldModel, specs: Sequence[FieldSpec], prepared: Sequence[Prepared],
                 table: ScoreTable, folds: int) -> bool:
    """Fits each multi-line field's spanner (spans.py) on out-of-fold scores: one per fold
    from the other folds' documents, kept in `table` for tuning, and one from all of them for
    `model`. The runs it learns from are those around the greedy run the tuned thresholds
    give. False when no field has enough documents for one."""
    by_pointer = {s.pointer: s for s in specs}
    added = False
    for pointer, head in model.fields.items():
        spec = by_pointer[pointer]
        if spec.kind not in MULTILINE_KINDS:
            continue
        rows: dict[int, tuple[list[list[float]], list[int]]] = {}
        for i, p in enumerate(prepared):
            scored, fields = table.get((i, pointer)), p.fields.get(pointer)
            if scored is None or fields is None or is_empty(fields.expected):
                continue
            greedy = _predict(head, spec, fields, scored, 0.0, head.extend, use_spans=False)
            if greedy is None:
                continue
            orders = [c.order for c in greedy.cands]
            rows[i] = span_rows(line_table(fields.cands, scored.scores), scored.joins,
                                (min(orders), max(orders)), fields.expected)
        head.spanner = _spanner_from(rows, lambda i: True)
        if head.spanner is None:
            continue
        for fold in range(folds):
            fitted = _spanner_from(rows, _other_folds(fold, folds))
            for i in range(fold, len(prepared), folds):
                if (i, pointer) in table:
                    table[(i, pointer)].spanner = Memoized(fitted) if fitted is not None else None
        added = True
    return added


def _spanner_from(rows: dict[int, tuple[list[list[float]], list[int]]],
                  docs: Callable[[int], bool]) -> Any:
    xs = [x for i, (x_rows, _) in rows.items() if docs(i) for x in x_rows]
    ys = [y for i, (_, y_rows) in rows.items() if docs(i) for y in y_rows]
    return fit_spanner(xs, ys)


def _other_folds(fold: int, folds: int) -> Callable[[int], bool]:
    return lambda i: i % folds != fold


def tune_spans(model: FieldModel, specs: Sequence[FieldSpec], prepared: Sequence[Prepared],
               table: ScoreTable) -> None:
    """Lets each spanner decide its field's runs where that gets more documents right out of
    fold (names first, as `apply` decides them)."""
    by_pointer = {s.pointer: s for s in specs}
    order = sorted((p for p, h in model.fields.items() if h.spanner is not None),
                   key=lambda p: yields_lines(by_pointer[p]))
    for pointer in order:
        head, spec = model.fields[pointer], by_pointer[pointer]
        taken = _taken(model, specs, prepared, table) if yields_lines(spec) else []

        def hits(use_spans: bool, head: FieldHead = head, spec: FieldSpec = spec,
                 pointer: str = pointer, taken: list[frozenset[int]] = taken) -> int:
            return sum(same(spec, p.fields[pointer].expected,
                            _decide(head, spec, p.fields[pointer], table.get((i, pointer)),
                                    head.threshold, head.extend, taken=_held(spec, taken, i),
                                    use_spans=use_spans))
                       for i, p in enumerate(prepared) if pointer in p.fields)

        head.use_spans = hits(True) > hits(False)
        if head.use_spans:  # the thresholds that suit the greedy run may not suit the spanner
            _tune_head(head, spec, prepared, table, taken)


def _held(spec: FieldSpec, taken: list[frozenset[int]], i: int) -> frozenset[int]:
    return taken[i] if yields_lines(spec) and i < len(taken) else frozenset()


def score(model: FieldModel | None, specs: Sequence[FieldSpec], prepared: Sequence[Prepared],
          table: ScoreTable | None = None) -> dict[str, dict[str, Any]]:
    """Per field: documents with a labelled value, accuracy of the model (with the rules as
    fallback) and of the rules alone."""
    out: dict[str, dict[str, Any]] = {}
    taken = _taken(model, specs, prepared, table) if model else []
    for spec in trainable(specs):
        n = model_hits = rule_hits = 0
        head = model.fields.get(spec.pointer) if model else None
        for i, p in enumerate(prepared):
            rows = p.fields.get(spec.pointer)
            if rows is None or is_empty(rows.expected):
                continue
            n += 1
            rule_hits += same(spec, rows.expected, rows.rule_value)
            if head is None:
                model_hits += same(spec, rows.expected, rows.rule_value)
                continue
            scored = table.get((i, spec.pointer)) if table is not None else \
                scored_by(head, rows)
            model_hits += same(spec, rows.expected,
                               _decide(head, spec, rows, scored, head.threshold, head.extend,
                                       taken=_held(spec, taken, i)))
        if n:
            out[spec.pointer] = {"documents": n, "accuracy": round(model_hits / n, 4),
                                 "rules_accuracy": round(rule_hits / n, 4),
                                 "learned": head is not None}
    return out


def cross_validate(prepared: Sequence[Prepared], specs: Sequence[FieldSpec], folds: int = 5,
                   progress: Callable[[int, int], None] | None = None
                   ) -> tuple[dict[str, dict[str, Any]], FieldModel]:
    """k-fold: each document scored by boosters that never saw it; thresholds tuned on those
    out-of-fold scores; then the final model fitted on every document with those thresholds.
    Returns (quality per field, final model)."""
    k = max(2, min(folds, len(prepared)))
    table: ScoreTable = {}
    for fold in range(k):
        held = [i for i in range(len(prepared)) if i % k == fold]
        train = [p for i, p in enumerate(prepared) if i % k != fold]
        model = fit(train, specs)
        for pointer, head in model.fields.items():
            for i in held:
                rows = prepared[i].fields.get(pointer)
                if rows is not None:
                    table[(i, pointer)] = scored_by(head, rows)
        if progress:
            progress(fold + 1, k + 1)
    final = fit(prepared, specs)
    tune(final, specs, prepared, table)
    if add_spanners(final, specs, prepared, table, k):
        tune_spans(final, specs, prepared, table)
    quality = score(final, specs, prepared, table)
    if progress:
        progress(k + 1, k + 1)
    return quality, final


def train_type(body: Any, folds: int = 5,
               progress: Callable[[float, str], None] | None = None
               ) -> tuple[FieldModel, dict[str, Any]]:
    """A document type's own model from its training set `{"schema", "examples": [{"name",
    "expected", "document"}]}` (documents as `ocr.read` stores them): quality by k-fold
    cross-validation, then the model fitted on every example."""
    from docmill.errors import InvalidInput
    from docmill.extraction.schema import check_schema

    report = progress or (lambda *_: None)
    if not isinstance(body, dict) or not isinstance(body.get("examples"), list):
        raise InvalidInput("a training set is an object with 'schema' and 'examples'")
    schema = check_schema(body.get("schema"))
    examples = []
    for n, item in enumerate(body["examples"]):
        if not isinstance(item, dict) or not isinstance(item.get("expected"), dict):
            raise InvalidInput(f"example {n}: needs 'expected' values and a 'document'")
        try:
            document = Document.from_dict(item.get("document"))
        except ValueError as exc:
            raise InvalidInput(f"example {n}: {exc}") from exc
        examples.append(Example(document, item["expected"], str(item.get("name") or n)))
    if len(examples) < 2:
        raise InvalidInput("training needs at least 2 labelled examples")
    specs = field_specs(schema)
    prepared = []
    for n, example in enumerate(examples):
        prepared.append(prepare(example, schema))
        report(2 + 38 * (n + 1) / len(examples), f"reading example {n + 1} of {len(examples)}")
    quality, model = cross_validate(
        prepared, specs, folds,
        lambda done, total: report(40 + 55 * done / total, f"training, fold {done} of {total}"))
    model.trained = {"examples": [e.name for e in examples], "folds": max(2, min(folds,
                                                                                 len(examples)))}
    model.quality = quality

    def mean(key: str) -> float | None:
        return round(sum(q[key] for q in quality.values()) / len(quality), 4) if quality else None

    return model, {"quality": quality, "examples": len(examples),
                   "fields": sorted(model.fields), "accuracy": mean("accuracy"),
                   "rules_accuracy": mean("rules_accuracy")}
