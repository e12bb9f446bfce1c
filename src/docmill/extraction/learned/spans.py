"""Where a multi-line value (an address, a long name) starts and ends, decided run by run.

`predict_field` grows a value line by line from the field booster's best line: a neighbour
joins when its own score or the joiner's probability passes a threshold. That decides each
step alone, so an address stops one line short where a line in the middle scores low, or
runs on into a phone line that scores well. The *spanner*, a small LightGBM classifier, scores
whole runs instead: every run of up to MAX_LINES adjacent lines around the booster's three
best lines, from what describes the run as a whole (its lines' scores, the joins inside it and
at its edges, a postcode on its last line, a phone or tax line after it, a name before it,
its gaps). It is trained on out-of-fold scores (the booster's scores on documents it never
saw, as at extraction); a run is positive when its text is, of all runs, the closest to the
labelled value (OCR slips aside).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import median
from typing import Any

from docmill.extraction.learned.candidates import DENSE, Cand, alnum

MAX_LINES = 6  # a multi-line value (an address) spans at most this many lines
ANCHORS = 3  # runs are tried around this many of the booster's best lines
MIN_RATIO = 80.0  # a run this far from the label (rapidfuzz ratio) is never a positive

SPAN_FEATURES = (
    "lines", "score_min", "score_mean", "score_max", "score_first", "score_last",
    "logit_sum", "score_above", "score_below", "join_inner_min", "join_inner_mean",
    "join_up", "join_down", "has_top1", "has_top2", "has_top3", "start_from_top1",
    "end_from_top1", "is_greedy", "greedy_overlap", "postcode_last", "postcode_any",
    "company_first", "company_any", "company_above", "phone_below", "tax_below", "phone_any",
    "tax_any", "gap_inner_max", "gap_above", "gap_below", "chars", "digit_share", "rel_y",
    "x0_spread",
)
_AT = {name: DENSE.index(name) for name in ("postcode", "company_words", "phone_hint",
                                            "tax_hint", "rel_y")}

Lines = dict[int, tuple[float, Cand]]  # reading order -> (best score, its candidate)


def line_table(cands: Sequence[Cand], scores: Sequence[float]) -> Lines:
    """Each line's best-scoring candidate, by the line's place in reading order."""
    out: Lines = {}
    for c, p in zip(cands, scores, strict=True):
        if c.order not in out or p > out[c.order][0]:
            out[c.order] = (p, c)
    return out


def ordered(cands: Sequence[Cand]) -> list[Cand]:
    """A run's candidates top to bottom by the lines' centres: on a tilted page the boxes
    grow tall and a visual row can hold two stacked lines, listed left to right."""
    return sorted(cands, key=lambda c: (c.seg.page, round(c.seg.box.cy / 4), c.seg.box.x0))


def run_text(lines: Lines, start: int, end: int) -> str:
    return " ".join(str(c.value) for c in ordered([lines[i][1] for i in range(start, end + 1)]))


def tops(lines: Lines) -> list[int]:
    return sorted(lines, key=lambda i: (-lines[i][0], i))[:ANCHORS]


def runs_around(lines: Lines, anchors: Sequence[int],
                taken: frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """Every run [start, end] of up to MAX_LINES adjacent lines on one page that holds one
    of `anchors` and no line in `taken` (the lines a name took) other than the first anchor,
    which the greedy run may also hold."""
    keep = anchors[0] if anchors else None
    out: set[tuple[int, int]] = set()
    for anchor in anchors:
        page = lines[anchor][1].seg.page
        for start in range(anchor - MAX_LINES + 1, anchor + 1):
            for end in range(anchor, start + MAX_LINES):
                if all(i in lines and lines[i][1].seg.page == page and
                       (i not in taken or i == keep) for i in range(start, end + 1)):
                    out.add((start, end))
    return sorted(out)


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _join(joins: dict[tuple[int, int], float], a: int, b: int) -> float:
    """How much the joiner wants lines a and b (neighbours) in one value, either way."""
    both = [joins[k] for k in ((a, b), (b, a)) if k in joins]
    return sum(both) / len(both) if both else -1.0


def run_features(lines: Lines, start: int, end: int, joins: dict[tuple[int, int], float],
                 anchors: Sequence[int], greedy: tuple[int, int], height: float,
                 width: float) -> list[float]:
    inside = [lines[i] for i in range(start, end + 1)]
    scores = [p for p, _ in inside]
    cands = [c for _, c in inside]
    first, last = cands[0], cands[-1]
    above, below = lines.get(start - 1), lines.get(end + 1)
    inner = [_join(joins, i, i + 1) for i in range(start, end)]
    gaps = [(cands[k + 1].seg.box.y0 - cands[k].seg.box.y1) / height
            for k in range(len(cands) - 1)]
    text = alnum(" ".join(str(c.value) for c in cands))
    top1 = anchors[0]
    held = set(range(start, end + 1))
    greedy_lines = set(range(greedy[0], greedy[1] + 1))

    def dense(c: Cand | None, name: str) -> float:
        return c.dense[_AT[name]] if c is not None else 0.0

    return [
        float(len(cands)), min(scores), sum(scores) / len(scores), max(scores), scores[0],
        scores[-1], sum(_logit(p) for p in scores),
        above[0] if above else -1.0, below[0] if below else -1.0,
        min(inner) if inner else 1.0, sum(inner) / len(inner) if inner else 1.0,
        _join(joins, start, start - 1), _join(joins, end, end + 1),
        *(float(len(anchors) > k and anchors[k] in held) for k in range(3)),
        float(start - top1), float(end - top1),
        float((start, end) == greedy), len(held & greedy_lines) / len(held | greedy_lines),
        dense(last, "postcode"), max(dense(c, "postcode") for c in cands),
        dense(first, "company_words"), max(dense(c, "company_words") for c in cands),
        dense(above[1] if above else None, "company_words"),
        dense(below[1] if below else None, "phone_hint"),
        dense(below[1] if below else None, "tax_hint"),
        max(dense(c, "phone_hint") for c in cands), max(dense(c, "tax_hint") for c in cands),
        max(gaps) if gaps else 0.0,
        (first.seg.box.y0 - above[1].seg.box.y1) / height if above else -1.0,
        (below[1].seg.box.y0 - last.seg.box.y1) / height if below else -1.0,
        float(len(text)), sum(ch.isdigit() for ch in text) / max(len(text), 1),
        dense(first, "rel_y"),
        (max(c.seg.box.x0 for c in cands) - min(c.seg.box.x0 for c in cands)) / width,
    ]


def scales(lines: Lines) -> tuple[float, float]:
    """The lines' median height and the width they span: what gaps and shifts are measured
    in."""
    boxes = [c.seg.box for _, c in lines.values()]
    height = max(median(b.height for b in boxes), 1.0)
    width = max(max(b.x1 for b in boxes) - min(b.x0 for b in boxes), 1.0)
    return height, width


def candidate_runs(lines: Lines, joins: dict[tuple[int, int], float], greedy: tuple[int, int],
                   taken: frozenset[int] = frozenset()
                   ) -> tuple[list[tuple[int, int]], list[list[float]]]:
    anchors = tops(lines)
    runs = runs_around(lines, anchors, taken)
    if greedy not in runs:
        runs.append(greedy)
    height, width = scales(lines)
    return runs, [run_features(lines, s, e, joins, anchors, greedy, height, width)
                  for s, e in runs]


def span_rows(lines: Lines, joins: dict[tuple[int, int], float], greedy: tuple[int, int],
              expected: Any) -> tuple[list[list[float]], list[int]]:
    """Training rows for one document: every candidate run, positive when its text is the
    closest of all runs to the labelled value (and close: MIN_RATIO)."""
    from rapidfuzz import fuzz

    target = alnum(expected) if expected is not None else ""
    if not target or not lines:
        return [], []
    runs, xs = candidate_runs(lines, joins, greedy)
    ratios = [fuzz.ratio(alnum(run_text(lines, s, e)), target) for s, e in runs]
    best = max(ratios)
    return xs, [int(best >= MIN_RATIO and r >= best - 1e-9) for r in ratios]


def fit_spanner(xs: list[list[float]], ys: list[int]) -> Any | None:
    """The spanner booster, or None when there are too few documents' runs to learn from."""
    import lightgbm
    import numpy as np

    if len(xs) < 200 or sum(ys) < 20:
        return None
    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 15,
              "min_data_in_leaf": 10, "feature_fraction": 0.9, "lambda_l2": 1.0,
              "verbose": -1, "num_threads": 1, "seed": 7, "deterministic": True,
              "force_row_wise": True}
    data = lightgbm.Dataset(np.asarray(xs, dtype=np.float64), label=ys, params={"verbose": -1})
    return lightgbm.train(params, data, num_boost_round=200)


def best_run(spanner: Any, lines: Lines, joins: dict[tuple[int, int], float],
             greedy: tuple[int, int], taken: frozenset[int] = frozenset()
             ) -> tuple[int, int]:
    """The run the spanner rates most likely to be the whole value (the greedy run on a
    tie)."""
    import numpy as np

    if isinstance(spanner, Memoized):
        return spanner.best_run(lines, joins, greedy, taken)
    runs, xs = candidate_runs(lines, joins, greedy, taken)
    probs = spanner.predict(np.asarray(xs, dtype=np.float64))
    best = max(range(len(runs)), key=lambda k: (float(probs[k]), runs[k] == greedy))
    return runs[best]


class Memoized:
    """One document's spanner during tuning, remembering its choices: tuning asks about the
    same runs for every threshold tried, and the choice depends only on the greedy run and
    the lines taken."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.memo: dict[tuple[tuple[int, int], frozenset[int]], tuple[int, int]] = {}

    def best_run(self, lines: Lines, joins: dict[tuple[int, int], float],
                 greedy: tuple[int, int], taken: frozenset[int]) -> tuple[int, int]:
        key = (greedy, taken)
        if key not in self.memo:
            self.memo[key] = best_run(self.booster, lines, joins, greedy, taken)
        return self.memo[key]
