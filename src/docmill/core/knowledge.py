"""Knowledge bases: an organization's collections of JSON documents and their search.

What faces call (Docutray's `/api/knowledge-bases`, the native `/v1/knowledge-bases`); always
scoped to the caller's organization: another organization's base or document is a 404.
Bodies are checked here, with either the Docutray (camelCase) or the native (snake_case)
names. A document's content must be valid against its base's JSON Schema; it may be given
as is or taken from a finished extraction job's `data`.

Search is offline and runs on both databases: the full-text index (SQLite FTS5 with
`unicode61` folding; PostgreSQL `to_tsvector('simple', ...)` with a GIN index) finds the
documents sharing a word or word prefix with the query, or a word of the base's vocabulary
(`knowledge_terms`) within a small edit distance of a query word (so a misspelt query meets
old documents of a large base too), the base's most recently updated documents are added,
and every candidate is ranked
by a fuzzy score (rapidfuzz): how well each query word is matched by a word of the document
(exact 1, prefix 0.9, else its edit-distance ratio when at least 0.75), blended with the
query's best partial match in the text. The score is the `similarity` (0..1).
"""

from __future__ import annotations

import bisect
import re
import uuid
from typing import Any

import jsonschema
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Insert, delete, func, or_, select, text
from sqlalchemy.orm import Session

from docmill.core.auth import Principal
from docmill.core.db import session_scope
from docmill.core.doctypes import check_schema
from docmill.core.models import (
    JobStatus,
    KnowledgeBase,
    KnowledgeDocument,
    KnowledgeTerm,
    utcnow,
)
from docmill.errors import Conflict, InvalidInput, NotFound

MAX_TEXT = 200_000  # characters of a document that are indexed
MAX_QUERY_WORDS = 16
FUZZY_CHARS = 50_000  # characters of a document the fuzzy score reads
MAX_VOCABULARY = 5000  # distinct words of a document a query word is fuzzily compared with
PHRASE_CHARS = 5000  # characters of a document the whole query is partially matched in
FULLTEXT_CANDIDATES = 200
RECENT_CANDIDATES = 200
WORD = re.compile(r"[^\W_]+", re.UNICODE)
TERM_LENGTHS = (3, 64)  # words of these lengths go into a base's vocabulary
SPELLINGS_PER_WORD = 3  # vocabulary words a misspelt query word is widened with


def _names(*names: str) -> Any:
    return Field(None, validation_alias=AliasChoices(*names))


class BaseFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    json_schema: dict[str, Any] | None = _names("schema", "jsonSchema", "json_schema")
    indexing_preferences: dict[str, Any] | None = _names("indexingPreferences",
                                                         "indexing_preferences")
    is_active: bool | None = _names("isActive", "is_active")


class DocumentFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    content: dict[str, Any] | None = None
    document_id: str | None = Field(None, max_length=255,
                                    validation_alias=AliasChoices("documentId", "document_id"))
    metadata: dict[str, Any] | None = None
    job_id: str | None = _names("jobId", "job_id", "conversionId", "conversion_id")


class SearchFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1, max_length=2000)
    limit: int = Field(10, ge=1, le=50)
    similarity_threshold: float = Field(
        0.3, ge=0, le=1,
        validation_alias=AliasChoices("similarityThreshold", "similarity_threshold"))
    include_metadata: bool = Field(
        True, validation_alias=AliasChoices("includeMetadata", "include_metadata"))


def _parse(model: type[BaseModel], body: Any) -> Any:
    if not isinstance(body, dict):
        raise InvalidInput("body: must be a JSON object", errors=["body: must be a JSON object"])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                    for e in exc.errors()]
        raise InvalidInput("; ".join(problems), errors=problems) from None


# --- knowledge bases -----------------------------------------------------------------------

def _base(session: Session, principal: Principal, kb_id: str) -> KnowledgeBase:
    row = session.get(KnowledgeBase, kb_id)
    if row is None or row.org_id != principal.org_id:
        raise NotFound("Knowledge base not found")
    return row


def _name_taken(session: Session, principal: Principal, name: str, but: str | None) -> bool:
    query = select(KnowledgeBase.id).where(KnowledgeBase.org_id == principal.org_id,
                                           KnowledgeBase.name == name)
    found = session.scalar(query)
    return found is not None and found != but


def document_counts(session: Session, kb_ids: list[str]) -> dict[str, int]:
    if not kb_ids:
        return {}
    rows = session.execute(select(KnowledgeDocument.kb_id, func.count())
                           .where(KnowledgeDocument.kb_id.in_(kb_ids))
                           .group_by(KnowledgeDocument.kb_id)).all()
    return {kb_id: count for kb_id, count in rows}


def _contains(search: str) -> str:
    """A LIKE pattern matching `search` literally: `%` and `_` in it are not wildcards."""
    literal = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{literal}%"


def list_bases(principal: Principal, *, offset: int, limit: int, search: str | None = None,
               is_active: bool | None = None) -> tuple[list[tuple[KnowledgeBase, int]], int]:
    """A page of the organization's bases (newest first) with their document counts."""
    where = [KnowledgeBase.org_id == principal.org_id]
    if search:
        pattern = _contains(search)
        where.append(or_(func.lower(KnowledgeBase.name).like(pattern, escape="\\"),
                         func.lower(func.coalesce(KnowledgeBase.description, ""))
                         .like(pattern, escape="\\")))
    if is_active is not None:
        where.append(KnowledgeBase.is_active.is_(is_active))
    with session_scope(readonly=True) as session:
        total = session.scalar(select(func.count()).select_from(KnowledgeBase).where(*where))
        rows = session.scalars(select(KnowledgeBase).where(*where)
                               .order_by(KnowledgeBase.created_at.desc(), KnowledgeBase.id)
                               .offset(offset).limit(limit)).all()
        counts = document_counts(session, [r.id for r in rows])
        return [(r, counts.get(r.id, 0)) for r in rows], int(total or 0)


def get_base(principal: Principal, kb_id: str) -> tuple[KnowledgeBase, int]:
    with session_scope(readonly=True) as session:
        row = _base(session, principal, kb_id)
        return row, document_counts(session, [row.id]).get(row.id, 0)


def create_base(principal: Principal, body: Any) -> KnowledgeBase:
    fields = _parse(BaseFields, body)
    problems = [f"{name}: Required" for name, value in
                (("name", fields.name), ("schema", fields.json_schema)) if value is None]
    if problems:
        raise InvalidInput("; ".join(problems), errors=problems)
    check_schema(fields.json_schema)
    with session_scope() as session:
        if _name_taken(session, principal, fields.name, None):
            raise Conflict(f"A knowledge base named '{fields.name}' already exists")
        row = KnowledgeBase(org_id=principal.org_id, name=fields.name,
                            description=fields.description, json_schema=fields.json_schema,
                            indexing_preferences=fields.indexing_preferences,
                            is_active=True if fields.is_active is None else fields.is_active)
        session.add(row)
        session.flush()
        return row


def update_base(principal: Principal, kb_id: str, body: Any) -> tuple[KnowledgeBase, int]:
    fields = _parse(BaseFields, body)
    sent = fields.model_fields_set
    with session_scope() as session:
        row = _base(session, principal, kb_id)
        if fields.name is not None and fields.name != row.name:
            if _name_taken(session, principal, fields.name, row.id):
                raise Conflict(f"A knowledge base named '{fields.name}' already exists")
            row.name = fields.name
        if "description" in sent:
            row.description = fields.description
        if fields.is_active is not None:
            row.is_active = fields.is_active
        if fields.indexing_preferences is not None:
            row.indexing_preferences = fields.indexing_preferences
        if fields.json_schema is not None:
            check_schema(fields.json_schema)
            row.json_schema = fields.json_schema
        row.updated_at = utcnow()
        session.flush()
        return row, document_counts(session, [row.id]).get(row.id, 0)


def delete_base(principal: Principal, kb_id: str) -> None:
    with session_scope() as session:
        row = _base(session, principal, kb_id)
        if _sqlite(session):
            session.execute(text("DELETE FROM knowledge_documents_fts WHERE kb_id = :kb"),
                            {"kb": row.id})
        session.execute(delete(KnowledgeDocument).where(KnowledgeDocument.kb_id == row.id))
        session.execute(delete(KnowledgeTerm).where(KnowledgeTerm.kb_id == row.id))
        session.delete(row)


# --- documents -----------------------------------------------------------------------------

def flatten(content: Any) -> str:
    """The words of a JSON document's values, in order, for the full-text index."""
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            parts.append(str(value))

    walk(content)
    return " ".join(parts)[:MAX_TEXT]


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _index(session: Session, doc: KnowledgeDocument) -> None:
    """Keep SQLite's FTS5 table in step (PostgreSQL's index follows the column itself), and
    the base's vocabulary."""
    add_terms(session, doc.kb_id, doc.text)
    if not _sqlite(session):
        return
    session.execute(text("DELETE FROM knowledge_documents_fts WHERE doc_id = :id"),
                    {"id": doc.id})
    session.execute(text("INSERT INTO knowledge_documents_fts (doc_id, kb_id, text) "
                         "VALUES (:id, :kb, :text)"),
                    {"id": doc.id, "kb": doc.kb_id, "text": doc.text})


def vocabulary_of(doc_text: str) -> list[str]:
    """The distinct words of a document's text that a base's vocabulary keeps."""
    low, high = TERM_LENGTHS
    return list(dict.fromkeys(w for w in words(doc_text[:MAX_TEXT])
                              if low <= len(w) <= high))[:MAX_VOCABULARY]


def add_terms(session: Session, kb_id: str, doc_text: str) -> None:
    """Insert the words not yet in the base's vocabulary (a concurrent insert of the same
    word is not an error on either database)."""
    terms = vocabulary_of(doc_text)
    if not terms:
        return
    statement: Insert
    if _sqlite(session):
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        statement = sqlite_insert(KnowledgeTerm).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert
        statement = postgresql_insert(KnowledgeTerm).on_conflict_do_nothing()
    session.execute(statement, [{"kb_id": kb_id, "term": t} for t in terms])


def spellings(session: Session, kb_id: str, terms: list[str]) -> list[str]:
    """Words of the base's vocabulary close to the query words it does not hold (their
    likely correct spellings), for the full-text query."""
    from rapidfuzz import fuzz, process

    low, high = TERM_LENGTHS
    asked = [t for t in terms if low + 1 <= len(t) <= high]
    if not asked:
        return []
    held = set(session.scalars(select(KnowledgeTerm.term).where(
        KnowledgeTerm.kb_id == kb_id, KnowledgeTerm.term.in_(asked))).all())
    missing = [t for t in asked if t not in held]
    found: list[str] = []
    for term in missing:  # a ratio of 0.75 needs lengths within a third of each other
        spread = max(1, len(term) // 3)
        near = session.scalars(select(KnowledgeTerm.term).where(
            KnowledgeTerm.kb_id == kb_id,
            func.length(KnowledgeTerm.term).between(len(term) - spread,
                                                    len(term) + spread))).all()
        found += [word for word, _, _ in process.extract(
            term, near, scorer=fuzz.ratio, score_cutoff=75, limit=SPELLINGS_PER_WORD)]
    return list(dict.fromkeys(found))


def _check_content(base: KnowledgeBase, content: dict[str, Any]) -> None:
    validator = jsonschema.validators.validator_for(base.json_schema)(base.json_schema)
    problems = [f"content{''.join('/' + str(p) for p in e.absolute_path)}: {e.message}"
                for e in validator.iter_errors(content)][:20]
    if problems:
        raise InvalidInput("; ".join(problems), errors=problems)


def content_from_job(principal: Principal, job_id: str) -> dict[str, Any]:
    """The `data` of the caller's finished extraction job, as a document's content."""
    from docmill.core import service

    job = service.get_job(principal, job_id)
    data = (job.result or {}).get("data") if job.job_status is JobStatus.SUCCESS else None
    if not isinstance(data, dict):
        raise InvalidInput(f"job {job_id} has no extracted data (it must be a finished "
                           "extraction)", errors=[f"jobId: {job_id} has no extracted data"])
    return data


def _content(principal: Principal, fields: DocumentFields) -> dict[str, Any] | None:
    if fields.content is not None:
        return fields.content
    if fields.job_id:
        return content_from_job(principal, fields.job_id)
    return None


def _document(session: Session, principal: Principal, kb_id: str,
              doc_id: str) -> KnowledgeDocument:
    _base(session, principal, kb_id)
    doc = session.get(KnowledgeDocument, doc_id)
    if doc is None or doc.kb_id != kb_id:
        raise NotFound("Document not found")
    return doc


def list_documents(principal: Principal, kb_id: str, *, offset: int, limit: int,
                   search: str | None = None) -> tuple[list[KnowledgeDocument], int]:
    where = [KnowledgeDocument.kb_id == kb_id]
    if search:
        where.append(func.lower(KnowledgeDocument.text).like(_contains(search), escape="\\"))
    with session_scope(readonly=True) as session:
        _base(session, principal, kb_id)
        total = session.scalar(select(func.count()).select_from(KnowledgeDocument).where(*where))
        rows = session.scalars(select(KnowledgeDocument).where(*where)
                               .order_by(KnowledgeDocument.created_at, KnowledgeDocument.id)
                               .offset(offset).limit(limit)).all()
        return list(rows), int(total or 0)


def get_document(principal: Principal, kb_id: str, doc_id: str) -> KnowledgeDocument:
    with session_scope(readonly=True) as session:
        return _document(session, principal, kb_id, doc_id)


def add_document(principal: Principal, kb_id: str, body: Any) -> KnowledgeDocument:
    fields = _parse(DocumentFields, body)
    content = _content(principal, fields)
    if content is None:
        raise InvalidInput("content: Required", errors=["content: Required"])
    with session_scope() as session:
        base = _base(session, principal, kb_id)
        _check_content(base, content)
        doc = KnowledgeDocument(kb_id=base.id, org_id=principal.org_id,
                                document_id=fields.document_id, content=content,
                                doc_metadata=fields.metadata, text=flatten(content))
        session.add(doc)
        session.flush()
        _index(session, doc)
        base.updated_at = utcnow()
        return doc


def update_document(principal: Principal, kb_id: str, doc_id: str,
                    body: Any) -> KnowledgeDocument:
    fields = _parse(DocumentFields, body)
    content = _content(principal, fields)
    with session_scope() as session:
        doc = _document(session, principal, kb_id, doc_id)
        if content is not None:
            _check_content(session.get_one(KnowledgeBase, kb_id), content)
            doc.content, doc.text = content, flatten(content)
        if fields.metadata is not None:
            doc.doc_metadata = fields.metadata
        if fields.document_id is not None:
            doc.document_id = fields.document_id
        doc.updated_at = utcnow()
        session.flush()
        _index(session, doc)
        return doc


def delete_document(principal: Principal, kb_id: str, doc_id: str) -> None:
    with session_scope() as session:
        doc = _document(session, principal, kb_id, doc_id)
        if _sqlite(session):
            session.execute(text("DELETE FROM knowledge_documents_fts WHERE doc_id = :id"),
                            {"id": doc.id})
        session.delete(doc)


# --- search and sync -----------------------------------------------------------------------

def words(value: str) -> list[str]:
    return [w.lower() for w in WORD.findall(value)]


def _fulltext_ids(session: Session, kb_id: str, terms: list[str]) -> list[str]:
    if _sqlite(session):
        match = " OR ".join(f'"{t}"*' for t in terms)
        rows = session.execute(text(
            "SELECT doc_id FROM knowledge_documents_fts WHERE knowledge_documents_fts "
            "MATCH :q AND kb_id = :kb ORDER BY bm25(knowledge_documents_fts) LIMIT :n"),
            {"q": match, "kb": kb_id, "n": FULLTEXT_CANDIDATES}).all()
    else:
        query = " | ".join(f"{t}:*" for t in terms)
        rows = session.execute(text(
            "SELECT id FROM knowledge_documents WHERE kb_id = :kb AND "
            "to_tsvector('simple', text) @@ to_tsquery('simple', :q) ORDER BY "
            "ts_rank(to_tsvector('simple', text), to_tsquery('simple', :q)) DESC LIMIT :n"),
            {"q": query, "kb": kb_id, "n": FULLTEXT_CANDIDATES}).all()
    return [r[0] for r in rows]


def similarity(query: str, terms: list[str], doc_text: str) -> float:
    """0..1: how well the query's words are met by the document's (see the module doc)."""
    from rapidfuzz import fuzz, process

    doc_text = doc_text[:FUZZY_CHARS]
    vocabulary = sorted(set(list(dict.fromkeys(words(doc_text)))[:MAX_VOCABULARY]))
    if not terms or not vocabulary:
        return 0.0
    known = set(vocabulary)
    by_length: dict[int, list[str]] = {}
    for word in vocabulary:
        by_length.setdefault(len(word), []).append(word)
    scores = []
    for term in terms:
        at = bisect.bisect_left(vocabulary, term)
        if term in known:
            scores.append(1.0)
        elif len(term) >= 3 and at < len(vocabulary) and vocabulary[at].startswith(term):
            scores.append(0.9)
        else:  # a ratio of 0.75 needs lengths within a third of each other
            spread = max(1, len(term) // 3)
            near = [w for n in range(len(term) - spread, len(term) + spread + 1)
                    for w in by_length.get(n, ())]
            best = process.extractOne(term, near, scorer=fuzz.ratio, score_cutoff=75)
            scores.append(best[1] / 100 * 0.85 if best else 0.0)
    coverage = sum(scores) / len(scores)
    phrase = fuzz.partial_ratio(query.lower(), doc_text.lower()[:PHRASE_CHARS]) / 100
    return round(0.8 * coverage + 0.2 * phrase * min(1.0, coverage * 2), 4)


def search(principal: Principal, kb_id: str,
           body: Any) -> tuple[SearchFields, list[tuple[KnowledgeDocument, float]]]:
    fields = _parse(SearchFields, body)
    terms = list(dict.fromkeys(words(fields.query)))[:MAX_QUERY_WORDS]
    with session_scope(readonly=True) as session:
        _base(session, principal, kb_id)
        widened = terms + [w for w in spellings(session, kb_id, terms) if w not in terms]
        ids = _fulltext_ids(session, kb_id, widened) if terms else []
        recent = session.scalars(select(KnowledgeDocument.id)
                                 .where(KnowledgeDocument.kb_id == kb_id)
                                 .order_by(KnowledgeDocument.updated_at.desc())
                                 .limit(RECENT_CANDIDATES)).all()
        candidates = list(dict.fromkeys([*ids, *recent]))
        docs = session.scalars(select(KnowledgeDocument)
                               .where(KnowledgeDocument.id.in_(candidates))).all() \
            if candidates else []
    ranked = [(doc, similarity(fields.query, terms, doc.text)) for doc in docs]
    ranked = [(d, s) for d, s in ranked if s > 0 and s >= fields.similarity_threshold]
    ranked.sort(key=lambda pair: (-pair[1], pair[0].created_at, pair[0].id))
    return fields, ranked[:fields.limit]


def sync(principal: Principal, kb_id: str) -> dict[str, Any]:
    """Rebuild the base's index entries from its documents (there are no embeddings)."""
    started = utcnow()
    with session_scope() as session:
        base = _base(session, principal, kb_id)
        docs = session.scalars(select(KnowledgeDocument)
                               .where(KnowledgeDocument.kb_id == base.id)).all()
        if _sqlite(session):
            session.execute(text("DELETE FROM knowledge_documents_fts WHERE kb_id = :kb"),
                            {"kb": base.id})
        session.execute(delete(KnowledgeTerm).where(KnowledgeTerm.kb_id == base.id))
        for doc in docs:
            doc.text = flatten(doc.content)
            _index(session, doc)
        base.synced_at = utcnow()
        return {"sync_id": str(uuid.uuid4()), "status": "completed",
                "documents_processed": len(docs), "errors": [], "started_at": started,
                "completed_at": base.synced_at}
