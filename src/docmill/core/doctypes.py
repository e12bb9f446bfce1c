"""Document types: the schemas extraction fills and the candidates identification weighs.

A type belongs to one organization, or to none when it ships with Docmill (built-in,
public). A caller sees its own organization's types (drafts included) and every public type
that is not a draft; anything else is a 404, never a 403, so codes of other organizations
do not leak. Non-admins create private types whose code starts with their organization's
slug (`<slug>_` + at least 3 more characters); admins may use any code and publish.

Faces call these functions with a `Principal`; they translate keys and error shapes only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from docmill.core.auth import Principal
from docmill.core.db import session_scope
from docmill.core.models import DocTypeExample, DocTypeModel, DocumentType, Job, JobStatus, utcnow
from docmill.errors import Conflict, Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)

CODE_RE = re.compile(r"^[a-z0-9_]+$")
MIN_SUFFIX = 3  # characters a non-admin's code needs after its organization prefix
MAX_EXAMPLES = 100  # per type and organization
EXAMPLES_USED = 20  # identification learns from the newest this many...
EXAMPLE_CHARS = 20_000  # ... each cut to this length (they travel in the job's parameters)
BUILTIN_ID_PREFIX = "builtin_"


class DocTypeFields(BaseModel):
    """The writable fields, under the Docutray names (camelCase) or the Python ones."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    name: str | None = Field(None, min_length=1, max_length=200)  # create: 2 (see there)
    code: str | None = Field(None, alias="codeType", min_length=1, max_length=100)
    description: str | None = Field(None, min_length=1, max_length=20_000)
    json_schema: dict[str, Any] | None = Field(None, alias="jsonSchema")
    keywords: list[str] | None = Field(None, max_length=200)
    is_public: bool | None = Field(None, alias="isPublic")
    is_draft: bool | None = Field(None, alias="isDraft")
    prompt_hints: str | None = Field(None, alias="promptHints", max_length=20_000)
    identify_prompt_hints: str | None = Field(None, alias="identifyPromptHints",
                                              max_length=20_000)
    conversion_mode: Literal["json", "toon", "multi_prompt"] | None = Field(
        None, alias="conversionMode")
    keep_property_ordering: bool | None = Field(None, alias="keepPropertyOrdering")


def _invalid(errors: list[str]) -> InvalidInput:
    return InvalidInput("; ".join(errors), errors=errors)


def parse_fields(body: Any) -> tuple[DocTypeFields, set[str]]:
    """The fields and the names actually sent; InvalidInput(errors=[...]) otherwise."""
    if not isinstance(body, dict):
        raise _invalid(["body: must be a JSON object"])
    try:
        fields = DocTypeFields.model_validate(body)
    except ValidationError as exc:
        raise _invalid([f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                        for e in exc.errors()]) from None
    return fields, set(fields.model_fields_set)


def check_schema(schema: Any) -> None:
    """A JSON Schema describing an object (what extraction fills); InvalidInput with the
    validator's reason otherwise."""
    if not isinstance(schema, dict):
        raise _invalid(["jsonSchema: must be a JSON object"])
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise _invalid([f"jsonSchema{'/' + where if where else ''}: invalid JSON Schema: "
                        f"{exc.message}"]) from None
    kind = schema.get("type")
    if kind is not None and kind != "object" and not (isinstance(kind, list) and "object" in kind):
        raise _invalid(["jsonSchema: the top level must describe an object (\"type\": \"object\")"])
    if "properties" in schema and not isinstance(schema["properties"], dict):
        raise _invalid(["jsonSchema: \"properties\" must be an object"])


def org_prefix(slug: str) -> str:
    """`<slug>_`, dashes folded to underscores (codes are `[a-z0-9_]+`, slugs allow `-`)."""
    return slug.replace("-", "_") + "_"


def check_code(principal: Principal, code: str) -> None:
    errors = []
    if not CODE_RE.match(code):
        errors.append("codeType: only lowercase letters, digits and underscores ([a-z0-9_]+)")
    elif not principal.is_admin:
        prefix = org_prefix(principal.org_slug)
        if not code.startswith(prefix):
            errors.append(f"codeType: must start with your organization prefix '{prefix}'")
        elif len(code) - len(prefix) < MIN_SUFFIX:
            errors.append(f"codeType: needs at least {MIN_SUFFIX} characters after the "
                          f"prefix '{prefix}'")
    if errors:
        raise _invalid(errors)


# --- reading --------------------------------------------------------------------------------

def _visible(principal: Principal) -> Any:
    return or_(DocumentType.org_id == principal.org_id,
               and_(DocumentType.is_public.is_(True), DocumentType.is_draft.is_(False)))


def _find(session: Session, principal: Principal, ref: str) -> DocumentType:
    """By id, else by code (the caller's own type first, then a public one)."""
    row = session.scalar(select(DocumentType).where(DocumentType.id == ref, _visible(principal)))
    if row is None:
        row = _by_code(session, principal, ref)
    if row is None:
        raise NotFound("Document type not found")
    return row


def _by_code(session: Session, principal: Principal, code: str) -> DocumentType | None:
    rows = session.scalars(select(DocumentType).where(
        DocumentType.code == code, _visible(principal))).all()
    own = [r for r in rows if r.org_id == principal.org_id]
    ranked = own or sorted(rows, key=lambda r: r.created_at)
    return ranked[0] if ranked else None


def get_type(principal: Principal, ref: str) -> DocumentType:
    with session_scope(readonly=True) as session:
        return _find(session, principal, ref)


def resolve_code(principal: Principal, code: str) -> DocumentType:
    """The type a `document_type_code` names for this caller; NotFound if it cannot use it."""
    with session_scope(readonly=True) as session:
        row = _by_code(session, principal, code)
    if row is None:
        raise NotFound("Document type not found")
    return row


def list_types(principal: Principal, *, search: str | None = None, offset: int = 0,
               limit: int = 20) -> tuple[list[DocumentType], int]:
    """One page, ordered by code then id (stable while types are added), and the total."""
    where = [_visible(principal)]
    if search:
        term = search.strip()
        where.append(or_(DocumentType.name.icontains(term, autoescape=True),
                         DocumentType.code.icontains(term, autoescape=True),
                         DocumentType.description.icontains(term, autoescape=True)))
    with session_scope(readonly=True) as session:
        total = session.scalar(select(func.count()).select_from(DocumentType).where(*where))
        rows = session.scalars(select(DocumentType).where(*where)
                               .order_by(DocumentType.code, DocumentType.id)
                               .offset(offset).limit(limit)).all()
    return list(rows), int(total or 0)


def example_counts(principal: Principal, type_ids: list[str]) -> dict[str, int]:
    if not type_ids:
        return {}
    with session_scope(readonly=True) as session:
        rows = session.execute(
            select(DocTypeExample.doc_type_id, func.count()).where(
                DocTypeExample.doc_type_id.in_(type_ids),
                DocTypeExample.org_id == principal.org_id)
            .group_by(DocTypeExample.doc_type_id)).all()
    return {type_id: int(count) for type_id, count in rows}


# --- writing --------------------------------------------------------------------------------

def _public_code_taken(session: Session, code: str, but: str | None = None) -> bool:
    query = select(DocumentType.id).where(DocumentType.code == code,
                                          DocumentType.is_public.is_(True))
    if but:
        query = query.where(DocumentType.id != but)
    return session.scalar(query.limit(1)) is not None


def create_type(principal: Principal, body: Any) -> DocumentType:
    fields, _sent = parse_fields(body)
    missing = [alias for name, alias in (("name", "name"), ("code", "codeType"),
                                         ("description", "description"),
                                         ("json_schema", "jsonSchema"))
               if getattr(fields, name) is None]
    if missing:
        raise _invalid([f"{alias}: required" for alias in missing])
    assert fields.code is not None and fields.name is not None
    if len(fields.name.strip()) < 2:  # the vendor's rule on create (its update takes "X")
        raise _invalid(["name: String must contain at least 2 character(s)"])
    check_code(principal, fields.code)
    check_schema(fields.json_schema)
    is_public = bool(fields.is_public) and principal.is_admin  # non-admins: forced false
    now = utcnow()
    row = DocumentType(
        org_id=principal.org_id, code=fields.code, name=fields.name,
        description=fields.description, json_schema=fields.json_schema,
        keywords=_clean_keywords(fields.keywords), is_public=is_public,
        is_draft=True if fields.is_draft is None else fields.is_draft,
        source="ADMIN" if principal.is_admin else "USER",
        prompt_hints=fields.prompt_hints, identify_prompt_hints=fields.identify_prompt_hints,
        conversion_mode=fields.conversion_mode or "json",
        keep_property_ordering=bool(fields.keep_property_ordering),
        created_by=principal.key_id, created_at=now, updated_at=now)
    try:
        with session_scope() as session:
            if _public_code_taken(session, row.code):
                raise Conflict("Document type code already exists")
            session.add(row)
            session.flush()
    except IntegrityError:
        raise Conflict("Document type code already exists") from None
    return row


def _clean_keywords(words: list[str] | None) -> list[str]:
    seen: dict[str, None] = {}
    for word in words or []:
        word = " ".join(str(word).split())[:100]
        if word:
            seen.setdefault(word, None)
    return list(seen)


def _owned(session: Session, principal: Principal, ref: str) -> DocumentType:
    row = _find(session, principal, ref)
    if row.org_id != principal.org_id:  # a public type of someone else (or built in)
        raise Forbidden("Insufficient permissions")
    return row


def update_type(principal: Principal, ref: str, body: Any) -> DocumentType:
    """Changes the fields sent; `codeType` is immutable and ignored. A non-admin's
    `isPublic: true` is ignored like on create."""
    fields, sent = parse_fields(body)
    sent.discard("code")
    if "json_schema" in sent:
        check_schema(fields.json_schema)
    for name in ("name", "json_schema", "is_draft", "is_public", "keep_property_ordering",
                 "conversion_mode"):
        if name in sent and getattr(fields, name) is None:
            raise _invalid([f"{DocTypeFields.model_fields[name].alias or name}: may not be null"])
    with session_scope() as session:
        row = _owned(session, principal, ref)
        for name in sent:
            value = getattr(fields, name)
            if name == "is_public":
                value = bool(value) and principal.is_admin
                if value and _public_code_taken(session, row.code, but=row.id):
                    raise Conflict("Document type code already exists")
            elif name == "keywords":
                value = _clean_keywords(value)
            setattr(row, name, value)
        row.version += 1
        row.updated_at = utcnow()
        session.flush()
        return row


def delete_type(principal: Principal, ref: str) -> DocumentType:
    with session_scope() as session:
        row = _owned(session, principal, ref)
        session.delete(row)
        return row


# --- validation of extracted data -----------------------------------------------------------

@dataclass
class Findings:
    errors: list[str]
    warnings: list[str]


def validate_data(doc_type: DocumentType, data: Any) -> Findings:
    """JSON Schema errors (types, required, formats, constraints), and soft findings as
    warnings: properties the schema does not declare, declared ones left empty."""
    schema = doc_type.json_schema or {}
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    errors = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path)
        errors.append(f"{where or '(root)'}: {error.message}")
    warnings = []
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    if isinstance(data, dict) and properties:
        if schema.get("additionalProperties") is None:
            warnings += [f"{key}: not declared by the schema" for key in data
                         if key not in properties]
        warnings += [f"{key}: no value" for key in properties
                     if key in data and data[key] in (None, "", [], {})]
    return Findings(errors, warnings)


# --- identification candidates and examples -------------------------------------------------

def candidates(principal: Principal, codes: list[str] | None) -> list[DocumentType]:
    """The types an identification weighs: `codes` (Forbidden naming the inaccessible ones),
    or every type the caller can use when None. Drafts of the caller's own are included."""
    with session_scope(readonly=True) as session:
        if codes is None:
            rows = session.scalars(select(DocumentType).where(_visible(principal))
                                   .order_by(DocumentType.code)).all()
            chosen: dict[str, DocumentType] = {}
            for row in rows:  # the caller's own type wins over a public one of that code
                if row.code not in chosen or row.org_id == principal.org_id:
                    chosen[row.code] = row
            return list(chosen.values())
        found, missing = [], []
        for code in dict.fromkeys(codes):
            match = _by_code(session, principal, code)
            (found.append(match) if match is not None else missing.append(code))
    if missing:
        raise Forbidden("Document types not accessible: " + ", ".join(missing), codes=missing)
    return found


def examples_for(principal: Principal, type_ids: list[str],
                 per_type: int = EXAMPLES_USED) -> dict[str, list[str]]:
    """The caller's organization's example texts per type, newest first."""
    if not type_ids:
        return {}
    with session_scope(readonly=True) as session:
        rows = session.execute(
            select(DocTypeExample.doc_type_id, DocTypeExample.text)
            .where(DocTypeExample.doc_type_id.in_(type_ids),
                   DocTypeExample.org_id == principal.org_id)
            .order_by(DocTypeExample.id.desc())).all()
    found: dict[str, list[str]] = {}
    for type_id, text in rows:
        bucket = found.setdefault(type_id, [])
        if len(bucket) < per_type:
            bucket.append(text[:EXAMPLE_CHARS])
    return found


def candidate_params(principal: Principal, rows: list[DocumentType]) -> list[dict[str, Any]]:
    """The `candidates` parameter of `identify.type`."""
    examples = examples_for(principal, [r.id for r in rows])
    return [{"code": r.code, "name": r.name, "description": r.description or "",
             "schema": r.json_schema or {}, "keywords": list(r.keywords or []),
             "examples": examples.get(r.id, [])} for r in rows]


def fill_type_params(principal: Principal, operation: str,
                     params: dict[str, Any]) -> dict[str, Any]:
    """Lets a caller name document types instead of spelling them out: `extract.fields` with
    a `document_type_code` and no `schema` gets that type's schema; `identify.type` with
    `candidates` as a list of codes (or none at all) gets those types (or every type the
    caller can use) with their keywords and examples. Anything else is left as it is."""
    given_key = params.get("model_key") if operation == "extract.fields" else None
    if given_key is not None and not params.get("document_type_code"):
        raise _model_key_refused()
    if not names_types(operation, params):
        return params
    if operation == "extract.fields":
        row = resolve_code(principal, str(params["document_type_code"]))
        filled = {**params}
        if "schema" not in params:
            filled["schema"] = row.json_schema or {}
        key = current_model_key(principal, row.id)
        if given_key is not None and given_key != key:  # only ever the one set here
            raise _model_key_refused()
        filled.pop("model_key", None)
        if key:
            filled["model_key"] = key
        return filled
    rows = candidates(principal, params.get("candidates"))
    return {**params, "candidates": candidate_params(principal, rows)}


def _model_key_refused() -> InvalidInput:
    return InvalidInput("model_key is set by Docmill from the document type, not by callers",
                        param="model_key")


def names_types(operation: str, params: dict[str, Any]) -> bool:
    """Whether `fill_type_params` has anything to look up (no database access: faces ask
    this first to keep ordinary submissions off a thread hop)."""
    if operation == "extract.fields":
        return bool(params.get("document_type_code"))
    if operation == "identify.type":
        given = params.get("candidates")
        return given is None or (isinstance(given, list) and bool(given)
                                 and all(isinstance(c, str) for c in given))
    return False


def models_of(session: Session, principal: Principal,
              type_id: str) -> list[tuple[DocTypeModel, Job | None]]:
    """The caller's organization's trainings of a type, newest first, with their jobs."""
    rows = session.scalars(select(DocTypeModel).where(
        DocTypeModel.doc_type_id == type_id, DocTypeModel.org_id == principal.org_id)
        .order_by(DocTypeModel.id.desc())).all()
    return [(r, session.get(Job, r.job_id)) for r in rows]


def current_model_key(principal: Principal, type_id: str) -> str | None:
    """The blob key of the caller's organization's newest usable taught model of a type."""
    with session_scope(readonly=True) as session:
        for _, job in models_of(session, principal, type_id):
            if job is None or job.org_id != principal.org_id or \
                    job.status != JobStatus.SUCCESS.value:
                continue
            for f in job.files_of("output"):
                if f.name.endswith(".model.gz"):
                    return f.blob_key
    return None


def check_expected(row: DocumentType, expected: Any) -> dict[str, Any]:
    """A labelled example's values: an object valid against the type's schema with nulls
    allowed (a value the document does not hold is null)."""
    from docmill.extraction.schema import nullable

    if not isinstance(expected, dict):
        raise InvalidInput("'expected' must be a JSON object of the type's fields")
    schema = row.json_schema or {}
    problems = sorted(jsonschema.Draft202012Validator(nullable(schema)).iter_errors(expected),
                      key=lambda e: list(e.path))
    if problems:
        raise InvalidInput("'expected' does not match the type's schema: " + "; ".join(
            f"{'/'.join(str(p) for p in e.path) or '(root)'}: {e.message}"
            for e in problems[:5]))
    return expected


def add_example(principal: Principal, ref: str, text: str, name: str = "",
                job_id: str | None = None, expected: dict[str, Any] | None = None,
                document: dict[str, Any] | None = None) -> tuple[DocTypeExample, int]:
    """Stores a sample's text on a type the caller can see (the example stays private to
    its organization), with its expected values and read document when it is labelled;
    returns it and how many the organization now has for the type."""
    if not text.strip():
        raise InvalidInput("no text could be read from the example document")
    with session_scope() as session:
        row = _find(session, principal, ref)
        if expected is not None:
            check_expected(row, expected)
        count = session.scalar(select(func.count()).select_from(DocTypeExample).where(
            DocTypeExample.doc_type_id == row.id, DocTypeExample.org_id == principal.org_id))
        if (count or 0) >= MAX_EXAMPLES:
            raise Conflict(f"a type holds at most {MAX_EXAMPLES} examples per organization")
        example = DocTypeExample(doc_type_id=row.id, org_id=principal.org_id, name=name[:255],
                                 text=text, job_id=job_id, created_at=utcnow(),
                                 expected=expected, document=document)
        session.add(example)
        session.flush()
        return example, int(count or 0) + 1


# --- built-in public types ------------------------------------------------------------------

def load_builtin_types() -> list[dict[str, Any]]:
    """The extraction package's built-in types, or none while it is not installed."""
    try:
        from docmill.extraction.builtin_types import builtin_types
    except ImportError:
        return []
    return list(builtin_types())


def seed_builtin_types(types: list[dict[str, Any]] | None = None) -> int:
    """Creates or refreshes the built-in public types (ids `builtin_<code>`, so concurrent
    starts cannot duplicate them); returns how many rows changed."""
    changed = 0
    for spec in load_builtin_types() if types is None else types:
        code = str(spec["codeType"])
        values = {"name": spec["name"], "description": spec.get("description") or None,
                  "json_schema": spec["schema"], "keywords": _clean_keywords(spec.get("keywords")),
                  "is_public": True, "is_draft": False, "source": "ADMIN"}
        try:
            with session_scope() as session:
                row = session.get(DocumentType, BUILTIN_ID_PREFIX + code)
                if row is None:
                    now = utcnow()
                    session.add(DocumentType(id=BUILTIN_ID_PREFIX + code, org_id=None, code=code,
                                             created_at=now, updated_at=now, **values))
                    changed += 1
                elif any(getattr(row, k) != v for k, v in values.items()):
                    for key, value in values.items():
                        setattr(row, key, value)
                    row.version += 1
                    row.updated_at = utcnow()
                    changed += 1
        except IntegrityError:  # another process seeded it at the same moment
            continue
    return changed
