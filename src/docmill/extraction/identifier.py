"""Which of the candidate document types a document is, or none of them.

Three kinds of evidence per candidate, each 0..1:

- **examples**: a TF-IDF model on character 2-5-grams (scikit-learn), fitted per request on
  the candidates' example texts plus their name, description and keywords; the evidence is
  the cosine similarity of the document to the nearest of the candidate's example texts
  (nearest neighbour rather than centroid: a type taught from three quite different samples
  keeps all three). Character n-grams survive OCR noise and need no language model;
- **keywords**: the share of the candidate's name and keywords printed in the document;
- **schema fill**: the share of the candidate's properties the built-in extractor finds *by
  their labels* (a value found only by its format fills every schema alike, so it does not
  count).

A share alone rewards tiny types: a type whose only keyword is "total" and whose schema is
{date, total} finds all of it in almost any invoice or receipt. So keywords and schema fill
are each also weighed by how much of the document's evidence the candidate accounts for:
its count of keyword hits (of labelled values found) over the best count among the
candidates. The candidate that explains the most keeps its share; one that explains a
fraction of what another explains keeps that fraction of its share. A type taught with
examples is left unweighed: its examples are its main evidence, and a one-field schema of
its own would otherwise sink it under the built-in types that fill more.

A candidate taught with examples leans on them (they are the user's own documents); a type
without examples leans on keywords and its schema. The best candidate is the answer if its
score reaches the threshold, otherwise the answer is null ("none of the options"); the
ranking always holds every candidate's score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from docmill.documents import Document

EXAMPLE_CHARS = 6000  # of each text that goes into the TF-IDF model


@dataclass
class Evidence:
    code: str
    examples: float
    keywords: float
    fill: float
    taught: bool
    keyword_hits: int = 0
    fill_found: int = 0
    score: float = 0.0


def _norm_text(text: str) -> str:
    return " " + " ".join(re.sub(r"[^\w%#&/.'-]+", " ", text.lower()).split()) + " "


def keyword_score(text: str, candidate: dict[str, Any]) -> float:
    return keyword_evidence(text, candidate)[0]


def keyword_evidence(text: str, candidate: dict[str, Any]) -> tuple[float, int]:
    """(share of the name and keywords printed in the text, 0..1; how many are printed)."""
    norm = _norm_text(text)
    words = [candidate.get("name") or "", *(candidate.get("keywords") or [])]
    terms = []
    for w in words:
        if isinstance(w, str):
            term = " ".join(re.sub(r"[^\w%#&/.'-]+", " ", w.lower()).split())
            if term and term not in terms:
                terms.append(term)
    if not terms:
        return 0.0, 0
    hits = sum(1 for t in terms if f" {t} " in norm or (len(t) > 5 and t in norm))
    name = terms[0]
    bonus = 0.25 if name and f" {name} " in norm else 0.0
    return min(1.0, hits / min(len(terms), 6) * 0.75 + bonus), hits


def fill_score(document: Document, schema: dict[str, Any] | None, layout=None) -> float:
    return fill_evidence(document, schema, layout)[0]


def fill_evidence(document: Document, schema: dict[str, Any] | None,
                  layout=None) -> tuple[float, int]:
    """(weighted share of the schema's properties found by their labels, 0..1; how many
    distinct printed values were found by a label, table rows included)."""
    from docmill.extraction.extractor import extract
    from docmill.extraction.schema import field_specs

    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return 0.0, 0
    specs = field_specs(schema)
    if not specs:
        return 0.0, 0
    try:
        found = extract(document, schema, layout)
    except Exception:  # noqa: BLE001 - an odd user schema must not sink the identification
        return 0.0, 0
    total = weight_found = 0.0
    values: set[tuple[Any, ...]] = set()
    for spec in specs:
        weight = 2.0 if spec.required else 1.0
        total += weight
        entry = found["fields"].get(spec.pointer)
        parts = [(k, e) for k, e in found["fields"].items() if k.startswith(spec.pointer + "/")]
        if entry is not None and entry.get("via") == "label":
            weight_found += weight * min(1.0, entry["confidence"] + 0.2)
            values.add(_where(spec.pointer, entry))
        elif parts:
            weight_found += weight
            values.update(_where(k, e) for k, e in parts)
    return (weight_found / total if total else 0.0), len(values)


def _where(pointer: str, entry: dict[str, Any]) -> tuple[Any, ...]:
    """One printed value: its page and box (two properties filled from one printed value
    count once), or the property when the extractor gave no box."""
    box = entry.get("box")
    if entry.get("page") is None or not box:
        return (pointer,)
    return (entry.get("page"), *(round(float(v)) for v in box))


def _explained(count: int, best: int) -> float:
    """The share of the best candidate's evidence count that this candidate's count is."""
    return count / best if best > 0 else 0.0


def _profile(candidate: dict[str, Any]) -> str:
    parts = [candidate.get("name") or "", candidate.get("description") or "",
             " ".join(k for k in candidate.get("keywords") or [] if isinstance(k, str))]
    schema = candidate.get("schema")
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        for name, prop in schema["properties"].items():
            parts.append(" ".join(re.split(r"[_\W]+", name)))
            if isinstance(prop, dict):
                parts.append(str(prop.get("title") or ""))
                parts += [s for s in prop.get("x-docmill-synonyms") or [] if isinstance(s, str)]
    return " ".join(p for p in parts if p)


def example_scores(text: str, candidates: list[dict[str, Any]]) -> list[float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    owners: list[int] = []
    corpus: list[str] = []
    for i, cand in enumerate(candidates):
        examples = [e for e in cand.get("examples") or [] if isinstance(e, str) and e.strip()]
        for example in examples:
            owners.append(i)
            corpus.append(_norm_text(example[:EXAMPLE_CHARS]))
        owners.append(i)
        corpus.append(_norm_text(_profile(cand)))
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                 min_df=1, max_features=60_000)
    matrix = vectorizer.fit_transform(corpus + [_norm_text(text[:EXAMPLE_CHARS])])
    sims = cosine_similarity(matrix[-1], matrix[:-1])[0]
    best = [0.0] * len(candidates)
    for owner, sim in zip(owners, sims, strict=True):
        best[owner] = max(best[owner], float(sim))
    return best


def identify(document: Document, candidates: list[dict[str, Any]],
             threshold: float) -> dict[str, Any]:
    """{"document_type_code", "confidence", "ranking": [{"code", "score", ...}]}."""
    text = document.to_text()
    if not candidates:
        return {"document_type_code": None, "confidence": 0.0, "ranking": []}
    from docmill.extraction.layout import Layout

    layout = Layout.of(document)
    sims = example_scores(text, candidates) if text.strip() else [0.0] * len(candidates)
    evidence: list[Evidence] = []
    for cand, sim in zip(candidates, sims, strict=True):
        taught = any(isinstance(e, str) and e.strip() for e in cand.get("examples") or [])
        keywords, hits = keyword_evidence(text, cand)
        fill, found = fill_evidence(document, cand.get("schema"), layout) if text.strip() \
            else (0.0, 0)
        evidence.append(Evidence(str(cand.get("code")), sim, keywords, fill, taught, hits,
                                 found))
    most_hits = max(e.keyword_hits for e in evidence)
    most_found = max(e.fill_found for e in evidence)
    for cand, ev in zip(candidates, evidence, strict=True):
        if not ev.taught:  # a taught type is judged mostly by its own examples
            ev.keywords *= _explained(ev.keyword_hits, most_hits)
            ev.fill *= _explained(ev.fill_found, most_found)
        # cosine similarity of char n-grams: ~0.1 between unrelated texts, 0.25 and more
        # between documents of one kind (noisy OCR included); stretched onto 0..1
        ex = max(0.0, min(1.0, (ev.examples - 0.10) / 0.25))
        has_keywords = bool(cand.get("keywords"))
        schema = cand.get("schema")
        has_schema = isinstance(schema, dict) and bool(schema.get("properties"))
        weights = (0.6, 0.2, 0.2) if ev.taught else (0.15, 0.45, 0.4)
        parts = [(weights[0], ex), (weights[1] if has_keywords else 0.0, ev.keywords),
                 (weights[2] if has_schema else 0.0, ev.fill)]
        ev.score = sum(w * v for w, v in parts) / sum(w for w, _ in parts)
    evidence.sort(key=lambda e: e.score, reverse=True)
    best = evidence[0]
    margin = best.score - (evidence[1].score if len(evidence) > 1 else 0.0)
    confidence = round(min(1.0, best.score + 0.5 * margin), 4)
    ranking = [{"code": e.code, "score": round(e.score, 4),
                "evidence": {"examples": round(e.examples, 4), "keywords": round(e.keywords, 4),
                             "schema_fill": round(e.fill, 4)}} for e in evidence]
    code = best.code if confidence >= threshold and best.score > 0 else None
    return {"document_type_code": code, "confidence": confidence if code else
            round(best.score, 4), "ranking": ranking}
