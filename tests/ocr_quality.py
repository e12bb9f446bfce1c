"""OCR quality measures shared by the tests and bench/ocr.py.

- FUNSD forms: word precision / recall / F1. A predicted word matches a ground-truth word
  when their texts are equal after lower-casing and stripping punctuation, and their boxes
  overlap with IoU >= 0.5 (each ground-truth word matched at most once, greedily by IoU).
- SROIE receipts: line-text character error rate. Every predicted *word* goes to the
  ground-truth line box it overlaps most (its centre inside counts most); each ground-truth
  line's text is compared with its words joined left to right, CER = edit distance /
  ground-truth length, summed over the receipt (spaces and case ignored). Words, not
  predicted lines, so that how an engine splits a row into lines does not count, only what
  it read and where.
"""

from __future__ import annotations

import csv
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}\u2018\u2019\u201c\u201d\u2014\u2013]")


def norm(text: str) -> str:
    return _PUNCT.sub("", text).lower().strip()


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


Box = tuple[float, float, float, float]


def funsd_words(path: Path) -> list[tuple[str, Box]]:
    data = json.loads(path.read_text())
    out = []
    for item in data["form"]:
        for word in item.get("words", []):
            if norm(word["text"]):
                out.append((word["text"], tuple(map(float, word["box"]))))
    return out


@dataclass
class WordScore:
    matched: int
    predicted: int
    truth: int

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.truth if self.truth else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: WordScore) -> WordScore:
        return WordScore(self.matched + other.matched, self.predicted + other.predicted,
                         self.truth + other.truth)


def score_words(predicted: list[tuple[str, Box]], truth: list[tuple[str, Box]]) -> WordScore:
    predicted = [(norm(t), b) for t, b in predicted if norm(t)]
    truth_n = [(norm(t), b) for t, b in truth]
    used = [False] * len(truth_n)
    matched = 0
    for text, box in predicted:
        best, best_iou = -1, 0.5
        for j, (gt_text, gt_box) in enumerate(truth_n):
            if used[j] or gt_text != text:
                continue
            value = iou(box, gt_box)
            if value >= best_iou:
                best, best_iou = j, value
        if best >= 0:
            used[best] = True
            matched += 1
    return WordScore(matched, len(predicted), len(truth_n))


def sroie_lines(path: Path) -> list[tuple[str, Box]]:
    out = []
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.reader(handle):
            if len(row) < 9:
                continue
            coords = [float(v) for v in row[:8]]
            text = ",".join(row[8:]).strip()
            xs, ys = coords[0::2], coords[1::2]
            out.append((text, (min(xs), min(ys), max(xs), max(ys))))
    return out


def edit_distance(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _canon(text: str) -> str:
    return re.sub(r"\s+", "", text.upper())


def line_cer(predicted: list[tuple[str, Box]], truth: list[tuple[str, Box]]) -> tuple[int, int]:
    """(edit errors, ground-truth characters) over one receipt, from predicted words; spaces
    and case ignored (SROIE's transcripts space and case words inconsistently)."""
    groups: list[list[tuple[float, str]]] = [[] for _ in truth]
    for text, box in predicted:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        best, best_score = -1, 0.0
        for j, (_, gt) in enumerate(truth):
            overlap_y = max(0.0, min(box[3], gt[3]) - max(box[1], gt[1]))
            overlap_x = max(0.0, min(box[2], gt[2]) - max(box[0], gt[0]))
            inside = gt[0] <= cx <= gt[2] and gt[1] <= cy <= gt[3]
            score = (overlap_x * overlap_y) / max(1.0, (box[2] - box[0]) * (box[3] - box[1]))
            score += 1.0 if inside else 0.0
            if score > best_score:
                best, best_score = j, score
        if best >= 0 and best_score > 0.3:
            groups[best].append((box[0], text))
    errors = chars = 0
    for (gt_text, _), group in zip(truth, groups, strict=True):
        guess = " ".join(t for _, t in sorted(group))
        errors += edit_distance(_canon(guess), _canon(gt_text))
        chars += len(_canon(gt_text))
    return errors, chars
