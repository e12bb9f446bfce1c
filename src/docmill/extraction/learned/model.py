"""The field-model file, and applying it to a read document.

A model file is gzip'd JSON: `{"format": "docmill-field-model", "version": 1, "fields":
{pointer: {"kind", "vocab", "booster", "threshold", "extend", "joiner", "spanner", ...}},
"trained": {...}, "quality": {...}}`; `booster` (and a multi-line field's `joiner` and
`spanner`) is LightGBM's own text dump. One file per document type, small
enough to ship in the package (a few hundred KB) and to keep in the blob store for a taught
type. Loading checks the format and every booster, so a truncated or foreign file is a
`ModelError` (the caller falls back to the rules), never a crash mid-extraction.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from docmill.extraction.layout import Layout
from docmill.extraction.learned.candidates import (
    DENSE,
    LINE_KINDS,
    MULTILINE_KINDS,
    Cand,
    DocContext,
    alnum,
    featurize,
    generate,
)
from docmill.extraction.learned.joining import JOIN_FEATURES, join_probabilities
from docmill.extraction.learned.spans import (
    MAX_LINES,
    SPAN_FEATURES,
    best_run,
    line_table,
    ordered,
)
from docmill.extraction.schema import FieldSpec

FORMAT = "docmill-field-model"
VERSION = 1
JOIN_OFF = 1.01  # a join threshold no probability reaches


class ModelError(Exception):
    """A model file that cannot be used (missing, corrupt, another format or version)."""


@dataclass
class FieldHead:
    kind: str
    vocab: dict[str, int]
    booster: Any  # lightgbm.Booster
    threshold: float = 0.5
    extend: float = 0.5
    lexicon: list[str] = field(default_factory=list)  # text values seen in training
    lexicon_ratio: float = 0.0  # how close a read text must be to one (0: not used)
    words: dict[str, int] = field(default_factory=dict)  # words of those values, counted
    fix_words: bool = False  # correct one-character misreadings with `words`
    joiner: Any = None  # lightgbm.Booster deciding where a multi-line value ends (joining.py)
    join: float = JOIN_OFF  # extend a value to a line the joiner gives at least this
    cash_rounding: bool = False  # on a page that rounds cash, the rounded amount printed
    fix_shapes: bool = False  # text: 0/1 inside a word read as O/I, accents OCR added dropped
    spanner: Any = None  # lightgbm.Booster choosing a multi-line value's run (spans.py)
    use_spans: bool = False  # the spanner decides the run (tuning found it better)

    def joins(self, cands: list[Cand]) -> dict[tuple[int, int], float]:
        return join_probabilities(self.joiner, cands)  # {} without a joiner

    def scores(self, cands: list[Cand]) -> list[float]:
        if not cands:
            return []
        return [float(p) for p in self.booster.predict(matrix(cands, self.vocab))]


@dataclass
class FieldModel:
    fields: dict[str, FieldHead]
    trained: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body = {"format": FORMAT, "version": VERSION, "trained": self.trained,
                "quality": self.quality, "dense": list(DENSE),
                "join_features": list(JOIN_FEATURES), "span_features": list(SPAN_FEATURES),
                "fields": {p: {"kind": h.kind, "vocab": sorted(h.vocab, key=h.vocab.__getitem__),
                               "booster": h.booster.model_to_string(),
                               "threshold": h.threshold, "extend": h.extend,
                               "lexicon": h.lexicon, "lexicon_ratio": h.lexicon_ratio,
                               "words": h.words, "fix_words": h.fix_words,
                               "joiner": h.joiner.model_to_string() if h.joiner else None,
                               "join": h.join, "cash_rounding": h.cash_rounding,
                               "fix_shapes": h.fix_shapes,
                               "spanner": h.spanner.model_to_string() if h.spanner else None,
                               "use_spans": h.use_spans}
                           for p, h in self.fields.items()}}
        return gzip.compress(json.dumps(body, separators=(",", ":")).encode(), mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> FieldModel:
        import lightgbm

        try:
            body = json.loads(gzip.decompress(data))
        except (OSError, EOFError, ValueError) as exc:
            raise ModelError(f"not a field-model file ({exc})") from exc
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ModelError("not a field-model file")
        if body.get("version") != VERSION or body.get("dense") != list(DENSE):
            raise ModelError(f"a field model of another version ({body.get('version')}); "
                             "retrain it")
        heads = {}
        try:
            for pointer, spec in body["fields"].items():
                booster = lightgbm.Booster(model_str=spec["booster"])
                vocab = {tok: i for i, tok in enumerate(spec["vocab"])}
                if booster.num_feature() != len(DENSE) + len(vocab):
                    raise ModelError(f"field {pointer!r}: the booster does not fit its "
                                     "features")
                heads[pointer] = FieldHead(spec["kind"], vocab, booster,
                                           float(spec["threshold"]), float(spec["extend"]),
                                           [str(v) for v in spec.get("lexicon") or []],
                                           float(spec.get("lexicon_ratio") or 0.0),
                                           {str(k): int(v) for k, v in
                                            (spec.get("words") or {}).items()},
                                           bool(spec.get("fix_words")),
                                           cash_rounding=bool(spec.get("cash_rounding")),
                                           fix_shapes=bool(spec.get("fix_shapes")))
                if spec.get("joiner"):
                    if body.get("join_features") != list(JOIN_FEATURES):
                        raise ModelError(f"field {pointer!r}: a joiner of another version; "
                                         "retrain it")
                    heads[pointer].joiner = lightgbm.Booster(model_str=spec["joiner"])
                    heads[pointer].join = float(spec.get("join", JOIN_OFF))
                if spec.get("spanner"):
                    if body.get("span_features") != list(SPAN_FEATURES):
                        raise ModelError(f"field {pointer!r}: a spanner of another version; "
                                         "retrain it")
                    spanner = lightgbm.Booster(model_str=spec["spanner"])
                    if spanner.num_feature() != len(SPAN_FEATURES):
                        raise ModelError(f"field {pointer!r}: the spanner does not fit its "
                                         "features")
                    heads[pointer].spanner = spanner
                    heads[pointer].use_spans = bool(spec.get("use_spans"))
        except (KeyError, TypeError, ValueError, lightgbm.basic.LightGBMError) as exc:
            raise ModelError(f"corrupt field model ({type(exc).__name__}: {exc})") from exc
        return cls(heads, body.get("trained") or {}, body.get("quality") or {})

    @classmethod
    def load(cls, path: Path) -> FieldModel:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read the field model {path.name}: {exc.strerror}") \
                from exc
        return cls.from_bytes(data)


def matrix(cands: list[Cand], vocab: dict[str, int]):
    """Dense features then one column per vocabulary token, as a CSR matrix."""
    import numpy as np
    from scipy.sparse import csr_matrix

    width = len(DENSE)
    rows, cols, vals = [], [], []
    for i, c in enumerate(cands):
        for j, v in enumerate(c.dense):
            if v:
                rows.append(i)
                cols.append(j)
                vals.append(float(v))
        for tok in c.tokens:
            k = vocab.get(tok)
            if k is not None:
                rows.append(i)
                cols.append(width + k)
                vals.append(1.0)
    return csr_matrix((np.array(vals, dtype=np.float64), (rows, cols)),
                      shape=(len(cands), width + len(vocab)))


def label_scores(hits) -> dict[tuple[int, str], float]:
    """The rules' label matches (`labels._label_hits` over the scalar properties) as the
    best score per (segment, field)."""
    out: dict[tuple[int, str], float] = {}
    for hit in hits:
        key = (hit.seg.index, hit.spec.pointer)
        out[key] = max(out.get(key, 0.0), hit.score)
    return out


@dataclass
class Prediction:
    value: Any
    confidence: float
    cands: list[Cand]


def known_value(runs: list[str], lexicon: list[str], ratio: float) -> str | None:
    """The known value (seen in training) that one of `runs` spells, allowing OCR slips:
    the best rapidfuzz ratio over letters and digits, if at least `ratio`."""
    if not lexicon or ratio <= 0 or not runs:
        return None
    from rapidfuzz import fuzz, process

    keys = [alnum(v) for v in lexicon]
    best: tuple[float, str] | None = None
    for run in runs:
        key = alnum(run)
        if len(key) < 4:
            continue
        hit = process.extractOne(key, keys, scorer=fuzz.ratio, score_cutoff=ratio)
        if hit is not None and (best is None or hit[1] > best[0]):
            best = (hit[1], lexicon[hit[2]])
    return best[1] if best else None


_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def corrected_words(text: str, words: dict[str, int]) -> str:
    """`text` with each word the OCR misread by one character (J1n, SCLANGOR) replaced by
    the word of the training labels it most likely is: one edit away, the same length, seen
    at least 3 times, and the only such word or much the most frequent."""
    if not words:
        return text
    from rapidfuzz.distance import Levenshtein

    def fix(match: re.Match[str]) -> str:
        token = match.group(0)
        key = token.upper()
        if key in words or len(key) < 3 or key.isdigit():
            return token
        near = sorted(((n, w) for w, n in words.items()
                       if len(w) == len(key) and n >= 3 and Levenshtein.distance(w, key) == 1),
                      reverse=True)
        if not near or (len(near) > 1 and near[1][0] * 3 > near[0][0]):
            return token
        return near[0][1]

    return _TOKEN.sub(fix, text)


_DIGIT_IN_WORD = re.compile(r"(?<=[^\W\d_])[01](?=[^\W\d_])|\b1(?=[^\W\d_]{3,}\b)")


def shape_fixed(text: str) -> str:
    """`text` with what OCR makes of letters undone: a 0 or 1 between two letters or a 1
    opening a word of letters (`F0OD`, `1DEA`) read as O / I, and accents on Latin letters
    dropped (`HARDWÀRE`). Only where tuning says it helps: a name may carry real accents."""
    import unicodedata

    text = _DIGIT_IN_WORD.sub(lambda m: "O" if m.group(0) == "0" else "I", text)
    folded = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


def rounded_amount(value: Any, cands: list[Cand]) -> Any:
    """Where cash is rounded to 5 cents (Malaysia, Switzerland, ...) a receipt prints the
    total, a rounding adjustment and the rounded total, which is what was paid: on such a
    page (`DocContext.rounds_cash`) `value` becomes that rounded amount if it is printed."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    rounded = round(round(number * 20) / 20, 2)
    if abs(rounded - number) < 0.005:
        return value
    for c in cands:
        try:
            if abs(float(c.value) - rounded) < 0.005:
                return c.value
        except (TypeError, ValueError):
            continue
    return value


def _runs(by_seg: dict[int, tuple[float, Cand]], around: int) -> list[str]:
    """Texts of the runs of up to MAX_LINES adjacent lines that include line `around`."""
    out = []
    for start in range(around - MAX_LINES + 1, around + 1):
        for end in range(around, start + MAX_LINES):
            if all(i in by_seg for i in range(start, end + 1)):
                out.append(" ".join(str(by_seg[i][1].value) for i in range(start, end + 1)))
    return out


def predict_field(spec: FieldSpec, cands: list[Cand], scores: list[float], threshold: float,
                  extend: float, lexicon: list[str] | None = None,
                  lexicon_ratio: float = 0.0, words: dict[str, int] | None = None,
                  joins: dict[tuple[int, int], float] | None = None, join: float = JOIN_OFF,
                  taken: frozenset[int] = frozenset(),
                  cash_rounding: bool = False, fix_shapes: bool = False,
                  spanner: Any = None) -> Prediction | None:
    """The best candidate if the model is sure enough (a run of lines for an address: a
    neighbouring line joins when its own score passes `extend` or the joiner's probability
    of going on to it passes `join`, unless another field already holds it: `taken`, the
    lines of the name above an address; with a `spanner`, the run it rates best of all
    those around the best lines); for text, a value seen in training that the lines
    around it spell wins over the raw text."""
    if not scores:
        return None
    best = max(range(len(cands)), key=scores.__getitem__)
    if scores[best] < threshold:
        return None
    if spec.kind not in MULTILINE_KINDS:
        value = cands[best].value
        if cash_rounding and spec.kind == "amount":
            value = rounded_amount(value, cands)
        if lexicon and isinstance(value, str):
            value = known_value([value], lexicon, lexicon_ratio) or \
                corrected_words(value, words or {})
        if fix_shapes and isinstance(value, str) and spec.kind in LINE_KINDS:
            value = shape_fixed(value)
        return Prediction(value, scores[best], [cands[best]])
    by_seg = line_table(cands, scores)
    first = cands[best]
    chosen = {first.order: first}
    for step in (-1, 1):
        i = first.order + step
        while len(chosen) < MAX_LINES and i in by_seg and i not in taken and (
                by_seg[i][0] >= extend or (joins or {}).get((i - step, i), 0.0) >= join):
            chosen[i] = by_seg[i][1]
            i += step
    if spanner is not None:
        start, end = best_run(spanner, by_seg, joins or {}, (min(chosen), max(chosen)), taken)
        chosen = {i: by_seg[i][1] for i in range(start, end + 1)}
    lines = ordered([chosen[i] for i in sorted(chosen)])
    value = " ".join(str(c.value) for c in lines)
    if lexicon:  # around the model's three best lines, a run may spell a known value
        tops = sorted(by_seg, key=lambda i: -by_seg[i][0])[:3]
        runs = [value] + [r for i in tops for r in _runs(by_seg, i)]
        known = known_value(runs, lexicon, lexicon_ratio)
        if known is not None and len(alnum(known)) < 0.9 * len(alnum(value)):
            known = None  # a known shorter value would drop lines the model kept (a branch)
        value = known or corrected_words(value, words or {})
    if fix_shapes:
        value = shape_fixed(value)
    return Prediction(value, scores[best], lines)


def candidates(layout: Layout, spec: FieldSpec, ctx: DocContext,
               month_first: bool) -> list[Cand]:
    cands = generate(layout, spec, month_first)
    featurize(cands, spec, ctx)
    return cands


def usable_heads(model: FieldModel, specs: list[FieldSpec]) -> list[tuple[FieldSpec, FieldHead]]:
    """The schema's fields this model knows (same path, same kind; not inside arrays)."""
    out = []
    for spec in specs:
        head = model.fields.get(spec.pointer)
        if head is not None and head.kind == spec.kind and "array" not in spec.types:
            out.append((spec, head))
    return out


def apply(model: FieldModel, layout: Layout, specs: list[FieldSpec],
          rule_fields: dict[str, dict[str, Any]], month_first: bool, hits
          ) -> dict[str, Prediction]:
    """The model's answers for the fields it is sure of, by pointer (`hits`: the rules'
    label matches, already found by `extract`)."""
    heads = usable_heads(model, specs)
    if not heads:
        return {}
    ctx = DocContext.of(layout, rule_fields, label_scores(hits))
    out: dict[str, Prediction] = {}
    taken: set[int] = set()
    for spec, head in sorted(heads, key=lambda sh: yields_lines(sh[0])):
        cands = candidates(layout, spec, ctx, month_first)
        found = predict_field(spec, cands, head.scores(cands), head.threshold, head.extend,
                              head.lexicon, head.lexicon_ratio,
                              head.words if head.fix_words else None,
                              head.joins(cands), head.join,
                              frozenset(taken) if yields_lines(spec) else frozenset(),
                              head.cash_rounding and ctx.rounds_cash, head.fix_shapes,
                              head.spanner if head.use_spans else None)
        if found is not None:
            out[spec.pointer] = found
            if claims_lines(spec):
                taken |= {c.order for c in found.cands}
    return out


def claims_lines(spec: FieldSpec) -> bool:
    """A name (organization, person): its lines are not also an address's."""
    return spec.kind in ("organization", "person")


def yields_lines(spec: FieldSpec) -> bool:
    """An address does not grow into the lines a name took (decided after the names)."""
    return spec.kind == "address"


MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def shipped_model(type_code: str, folder: str = "") -> FieldModel | None:
    """The model for a built-in type (from `folder`, else the package), or None if it has
    none. Loaded once per process and file version."""
    if not type_code.replace("_", "").isalnum():
        return None
    path = (Path(folder) if folder else MODELS_DIR) / f"{type_code}.model.gz"
    try:
        stat = path.stat()
    except OSError:
        return None
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: int, _size: int) -> FieldModel:
    return FieldModel.load(Path(path))
