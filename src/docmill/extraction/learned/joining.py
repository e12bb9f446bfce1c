"""Whether a multi-line value (an address, a long name) goes on to the next line.

The field booster scores each line on its own; where an address ends is a question about two
lines together: how far apart they are, whether they are aligned and of one size, whether the
next one is a phone, a tax number or a total. A second, small LightGBM classifier (the
*joiner*) answers it for every pair of lines next to each other in reading order, from the
line the value already holds to the one beside it, trained on the labelled lines: a pair is
positive when both lines carry a part of the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from docmill.extraction.learned.candidates import DENSE, Cand

# the neighbour's own features the joiner reads, by name (from candidates.DENSE)
NEIGHBOUR = ("rel_y", "chars", "words", "digits", "letters", "upper", "punct", "has_colon",
             "company_words", "postcode", "phone_hint", "tax_hint", "quality",
             "ocr_confidence", "whole_line")
JOIN_FEATURES = ("direction", "gap", "x0_shift", "centre_shift", "x1_shift", "height_ratio",
                 "same_row", "held_postcode", "held_phone", "held_tax", "held_company",
                 *(f"next_{name}" for name in NEIGHBOUR))
_AT = {name: DENSE.index(name) for name in NEIGHBOUR + ("postcode", "phone_hint", "tax_hint",
                                                         "company_words")}


def lines_of(cands: Sequence[Cand]) -> dict[int, Cand]:
    """One candidate per line (by reading order): the whole line where there is one."""
    out: dict[int, Cand] = {}
    for c in cands:
        if c.order not in out or (c.whole_line and not out[c.order].whole_line):
            out[c.order] = c
    return out


def pair_features(held: Cand, beside: Cand, step: int, median_height: float,
                  page_width: float) -> list[float]:
    a, b = held.seg.box, beside.seg.box
    height = max(median_height, 1.0)
    width = max(page_width, 1.0)
    gap = (b.y0 - a.y1) if step > 0 else (a.y0 - b.y1)
    return [
        float(step), gap / height, (b.x0 - a.x0) / width, (b.cx - a.cx) / width,
        (b.x1 - a.x1) / width, b.height / max(a.height, 1.0),
        float(held.seg.row == beside.seg.row),
        held.dense[_AT["postcode"]], held.dense[_AT["phone_hint"]],
        held.dense[_AT["tax_hint"]], held.dense[_AT["company_words"]],
        *(beside.dense[_AT[name]] for name in NEIGHBOUR),
    ]


def pairs(cands: Sequence[Cand]) -> list[tuple[int, int, list[float]]]:
    """(line, next line, features) for every pair of neighbouring lines, both ways; sizes
    relative to the lines' median height and to the width the text spans on the page."""
    from statistics import median

    by_line = lines_of(cands)
    if not by_line:
        return []
    median_height = median(c.seg.box.height for c in by_line.values())
    page_width: dict[int, float] = {}
    for page in {c.seg.page for c in by_line.values()}:
        boxes = [c.seg.box for c in by_line.values() if c.seg.page == page]
        page_width[page] = max(b.x1 for b in boxes) - min(b.x0 for b in boxes)
    out = []
    for order, held in by_line.items():
        for step in (-1, 1):
            beside = by_line.get(order + step)
            if beside is not None and beside.seg.page == held.seg.page:
                out.append((order, order + step, pair_features(
                    held, beside, step, median_height, page_width.get(held.seg.page, 1.0))))
    return out


def training_rows(cands: Sequence[Cand], labels: Sequence[bool]
                  ) -> tuple[list[list[float]], list[int]]:
    """From each labelled line to its neighbours: positive when the neighbour is labelled
    too."""
    labelled = {c.order for c, lab in zip(cands, labels, strict=True) if lab}
    xs, ys = [], []
    for order, beside, feats in pairs(cands):
        if order in labelled:
            xs.append(feats)
            ys.append(int(beside in labelled))
    return xs, ys


def fit_joiner(xs: list[list[float]], ys: list[int]) -> Any | None:
    """The joiner booster, or None when the labels show too few ends and continuations."""
    import lightgbm
    import numpy as np

    if len(xs) < 20 or sum(ys) < 5 or len(ys) - sum(ys) < 5:
        return None
    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 7,
              "min_data_in_leaf": 5, "lambda_l2": 1.0, "verbose": -1, "num_threads": 1,
              "seed": 7, "deterministic": True, "force_row_wise": True}
    data = lightgbm.Dataset(np.asarray(xs, dtype=np.float64), label=ys, params={"verbose": -1})
    return lightgbm.train(params, data, num_boost_round=150)


def join_probabilities(joiner: Any, cands: Sequence[Cand]) -> dict[tuple[int, int], float]:
    """P(the value goes on from line a to line b) for every neighbouring pair (a, b)."""
    if joiner is None:
        return {}
    rows = pairs(cands)
    if not rows:
        return {}
    import numpy as np

    probs = joiner.predict(np.asarray([feats for _, _, feats in rows], dtype=np.float64))
    return {(a, b): float(p) for (a, b, _), p in zip(rows, probs, strict=True)}
