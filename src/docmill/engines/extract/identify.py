"""`identify.type`: which of the candidate document types a document is, offline.

The document is read as `ocr.read` reads it; `extraction/identifier.py` scores every
candidate (example texts through a per-request TF-IDF model, keywords, how much of its schema
the extractor fills by labels). Below the threshold the answer is null - "none of the
options" - with every candidate's score in the ranking.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from docmill.engines.base import (
    Engine,
    EngineInput,
    EngineOutput,
    EngineResult,
    Operation,
    Params,
    Progress,
    output_stem,
)
from docmill.engines.extract.fields import read_params, text_source
from docmill.engines.ocr.pipeline import ACCEPTS, read_document


class Candidate(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, serialize_by_alias=True)

    code: str = Field(min_length=1)
    name: str = ""
    description: str = ""
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    keywords: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list, description="Plain text of example "
                                "documents of this type (e.g. ocr.read's text).")


class IdentifyParams(Params):
    candidates: list[Candidate] = Field(min_length=1, description="The types to choose from.")
    threshold: float | None = Field(None, ge=0, le=1, description="Confidence below which "
                                    "the answer is null; default the identify_threshold "
                                    "setting.")
    ocr_engine: Literal["auto", "tesseract", "rapidocr"] = "auto"
    languages: list[str] | None = None
    pages: str | None = Field(None, description="Page ranges to read; default the first 3.")
    password: str | None = None


class IdentifyEngine(Engine):
    name = "identify"
    operations = (
        Operation("identify.type", "Identify which of the candidate document types a "
                  "document is (or none), with a confidence and a ranking.", IdentifyParams,
                  ACCEPTS, ("json",), engine="identify"),
    )

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        from docmill.extraction.identifier import identify
        from docmill.settings import get_settings

        assert isinstance(params, IdentifyParams)
        progress(1, "reading the document")
        outcome = read_document(inputs[0], read_params(params.ocr_engine, params.languages,
                                                       params.pages or "1-3", params.password),
                                progress, span=(0, 80))
        document = outcome.document
        progress(85, "scoring the candidates")
        threshold = params.threshold if params.threshold is not None else \
            get_settings().identify_threshold
        candidates = [{"code": c.code, "name": c.name, "description": c.description,
                       "schema": c.schema_, "keywords": c.keywords, "examples": c.examples}
                      for c in params.candidates]
        data = identify(document, candidates, threshold)
        data.update({"pages": len(document.pages), "text_source": text_source(document),
                     "threshold": threshold})
        out = workdir / f"{output_stem(inputs[0].name)}.json"
        out.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        progress(100, "done")
        return EngineResult([EngineOutput(out, "application/json")], data=data,
                            pages=len(document.pages))
