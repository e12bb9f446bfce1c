"""`extract.fields`: fill a JSON Schema from a document, offline.

The document is read exactly as `ocr.read` reads it (`read_document`: text layer first, OCR
where a page has none, the same layout analysis), then the built-in extractor
(`extraction/extractor.py`) fills the schema; with `extract_llm_url` set, an OpenAI-compatible
chat server answers first and the built-in extractor fills what it left null (or answers alone
when the server fails or its answer does not fit the schema).

Result: `data` (every schema property present, null where the document does not say; valid
against the schema with nulls allowed), `fields` (per found value: value, confidence 0..1,
page, box in points, how it was found), `missing_required`, `pages`, `text_source`,
`extractor` (builtin | llm | llm+builtin).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator

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
from docmill.engines.ocr.pipeline import ACCEPTS, ReadParams, read_document
from docmill.errors import InvalidInput
from docmill.extraction.schema import check_schema


class ExtractParams(Params):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema (an object with "
                                    "properties) of the data to extract.")
    document_type_code: str | None = Field(None, description="The document type the schema "
                                           "comes from (passed to the LLM as a hint).")
    ocr_engine: Literal["auto", "tesseract", "rapidocr"] = Field(
        "auto", description="OCR engine for pages without a text layer, as ocr.read's engine.")
    languages: list[str] | None = Field(None, description="Tesseract languages, as ocr.read.")
    pages: str | None = Field(None, description="Page ranges to read, e.g. '1-2'.")
    password: str | None = None
    use_llm: bool = Field(True, description="Ask the configured LLM server first (no effect "
                          "when extract_llm_url is not set).")
    model_key: str | None = Field(None, description="Set by Docmill when the document type "
                                  "has a taught extractor; refused from callers.")

    blob_params: ClassVar[tuple[str, ...]] = ("model_key",)

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_schema(value)


class TrainParams(Params):
    document_type_code: str = Field(description="The document type being taught.")
    folds: int = Field(5, ge=2, le=10, description="Cross-validation folds for the quality "
                       "figures.")


def read_params(ocr_engine: str, languages: list[str] | None, pages: str | None,
                password: str | None) -> ReadParams:
    return ReadParams(engine=ocr_engine, languages=languages, pages=pages,
                      password=password)


def text_source(document) -> str:
    """'text-layer', 'ocr', 'mixed' or 'empty': how the pages were read."""
    sources = {p.source for p in document.pages if p.source != "empty"}
    if not sources:
        return "empty"
    return sources.pop() if len(sources) == 1 else "mixed"


def builtin_code_of(schema: dict[str, Any]) -> str | None:
    """The built-in type whose schema this is, for jobs that send a built-in schema without
    naming the type (they get its shipped model all the same)."""
    return _builtin_codes().get(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=1)
def _builtin_codes() -> dict[str, str]:
    from docmill.extraction.builtin_types import builtin_types

    return {json.dumps(t["schema"], sort_keys=True): t["codeType"] for t in builtin_types()}


def field_model(type_code: str | None, model_path: str | None) -> tuple[Any, str | None, list[str]]:
    """The field model to use: the type's taught one (a local copy the runner made), else the
    one shipped for a built-in type, else none. Returns (model, where from, warnings); a
    model that cannot be loaded is a warning and the rules answer alone."""
    from docmill.extraction.learned.model import FieldModel, ModelError, shipped_model
    from docmill.settings import get_settings

    warnings: list[str] = []
    if model_path:
        try:
            return FieldModel.load(Path(model_path)), "taught", warnings
        except ModelError as exc:
            warnings.append(f"the document type's taught extractor could not be used ({exc}); "
                            "extracted by rules")
    elif model_path == "":
        warnings.append("the document type's taught extractor is gone; extracted by rules")
    if type_code:
        try:
            folder = get_settings().extract_models_dir
            model = shipped_model(type_code, folder)
        except ModelError as exc:
            warnings.append(f"the field model of {type_code!r} could not be used ({exc}); "
                            "extracted by rules")
        else:
            if model is not None:
                return model, "shipped", warnings
    return None, None, warnings


def extract_document(document, schema: dict[str, Any], type_code: str | None = None,
                     use_llm: bool = True, model: Any = None) -> dict[str, Any]:
    """Built-in extraction (rules, then the field model if any), with the LLM first when one
    is configured."""
    from docmill.extraction import llm
    from docmill.extraction.extractor import extract
    from docmill.extraction.layout import Layout
    from docmill.extraction.schema import field_specs, make_valid, missing_required, set_path
    from docmill.settings import get_settings

    builtin = extract(document, schema, model=model)
    settings = get_settings()
    if not (use_llm and settings.extract_llm_url):
        return {**builtin, "extractor": "builtin"}
    layout = Layout.of(document)
    answer = llm.request(settings.extract_llm_url, settings.extract_llm_model,
                         settings.extract_llm_api_key, settings.extract_llm_timeout_s, schema,
                         layout, type_code)
    if answer is None:
        return {**builtin, "extractor": "builtin", "llm_error": "no usable answer"}
    answer = llm.ground(answer, layout)
    specs = field_specs(schema)
    data = builtin["data"]
    fields = dict(builtin["fields"])
    used_llm = used_builtin = False
    for spec in specs:
        node: Any = answer
        for key in spec.path:
            node = node.get(key) if isinstance(node, dict) else None
        if node not in (None, [], {}):
            set_path(data, spec.path, node)
            for key in [k for k in fields if k == spec.pointer or
                        k.startswith(spec.pointer + "/")]:
                fields.pop(key)
            fields[spec.pointer] = {"value": node, "confidence": 0.6, "page": None,
                                    "box": None, "via": "llm"}
            used_llm = True
        elif spec.pointer in fields:
            used_builtin = True
    data, _ = make_valid(data, schema, specs)
    kind = "llm+builtin" if used_llm and used_builtin else "llm" if used_llm else "builtin"
    return {"data": data, "fields": fields, "missing_required": missing_required(data, specs),
            "dropped": builtin["dropped"], "extractor": kind}


class ExtractEngine(Engine):
    name = "extract"
    operations = (
        Operation("extract.fields", "Fill a JSON Schema from a document (labels, formats, "
                  "positions and tables; optional LLM), with per-field confidence and boxes.",
                  ExtractParams, ACCEPTS, ("json",), engine="extract"),
        Operation("extract.train", "Train a document type's own field extractor from its "
                  "labelled examples (started by Docmill; k-fold quality per field).",
                  TrainParams, frozenset({"application/json"}), ("gz",), engine="extract",
                  in_converters=False),
    )

    def start(self) -> None:
        from docmill.extraction import values

        values.warm_up()

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        if operation == "extract.train":
            assert isinstance(params, TrainParams)
            return self._train(inputs, params, workdir, progress)
        assert isinstance(params, ExtractParams)
        progress(1, "reading the document")
        outcome = read_document(inputs[0], read_params(params.ocr_engine, params.languages,
                                                       params.pages, params.password),
                                progress, span=(0, 80))
        document = outcome.document
        progress(85, "extracting fields")
        model, model_source, warnings = field_model(
            params.document_type_code or builtin_code_of(params.schema_), params.model_key)
        found = extract_document(document, params.schema_, params.document_type_code,
                                 params.use_llm, model)
        progress(100, "done")
        data = {"data": found["data"], "fields": found["fields"],
                "missing_required": found["missing_required"], "pages": len(document.pages),
                "text_source": text_source(document), "extractor": found["extractor"],
                "model": model_source, "document_type_code": params.document_type_code}
        out = workdir / f"{output_stem(inputs[0].name)}.json"
        out.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        return EngineResult([EngineOutput(out, "application/json")], data=data,
                            warnings=warnings, pages=len(document.pages))

    def _train(self, inputs: Sequence[EngineInput], params: TrainParams, workdir: Path,
               progress: Progress) -> EngineResult:
        from docmill.extraction.learned.training import train_type

        progress(1, "loading the labelled examples")
        try:
            body = json.loads(inputs[0].path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"the training set is not JSON: {exc}") from exc
        model, report = train_type(body, params.folds, progress)
        out = workdir / f"{params.document_type_code}.model.gz"
        out.write_bytes(model.to_bytes())
        progress(100, "done")
        data = {**report, "document_type_code": params.document_type_code,
                "model_bytes": out.stat().st_size}
        return EngineResult([EngineOutput(out, "application/gzip")], data=data)
