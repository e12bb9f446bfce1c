"""SQLAlchemy models: the whole persistent state of Docmill.

Portable between SQLite and PostgreSQL: JSON columns, string ids, UTC timestamps stored
through one type so that both databases hand back aware datetimes.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}
    if TYPE_CHECKING:
        __table__: ClassVar[Table]  # every model maps one table (core statements use it)


class JobStatus(str, enum.Enum):
    ENQUEUED = "ENQUEUED"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    EXPIRED = "EXPIRED"
    DELETED = "DELETED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_gone(self) -> bool:
        """Expired and deleted jobs answer 404 on every face."""
        return self in (JobStatus.EXPIRED, JobStatus.DELETED)


TERMINAL_STATUSES = frozenset(
    {JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.EXPIRED, JobStatus.DELETED}
)


class Role(str, enum.Enum):
    ADMIN = "admin"
    USER = "user"


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    webhook_secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default=Role.USER.value)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    org: Mapped[Organization] = relationship(lazy="joined")


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    face: Mapped[str] = mapped_column(String(32), default="native")
    operation: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.ENQUEUED.value)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    timeout_s: Mapped[float] = mapped_column(default=600.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime]
    # when a live job fails with `timeout` whatever its worker does (a face's promise such as
    # Docutray's 60 minutes); the sweeper and every read enforce it, see `jobs.fail_overdue`
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    face_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
    # a step job of a pipeline run: the run (a job itself), the step's id in the definition
    # and the item of a fan-out (0 for a step run once, -1 for a page fan-out's split)
    parent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    step: Mapped[str | None] = mapped_column(String(100), default=None)
    step_item: Mapped[int | None] = mapped_column(Integer, default=None)

    files: Mapped[list[JobFile]] = relationship(
        back_populates="job", order_by="JobFile.position", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_jobs_status_lease", "status", "lease_until"),
        Index("ix_jobs_org_created", "org_id", "created_at"),
        Index("ix_jobs_expires", "expires_at"),
        Index("ix_jobs_deadline", "deadline_at"),
        Index("ux_jobs_parent_step_item", "parent_id", "step", "step_item", unique=True),
    )

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)

    def files_of(self, role: str) -> list[JobFile]:
        return [f for f in self.files if f.role == role]


class JobFile(Base):
    """An input (`role="input"`) or output (`role="output"`) file of a job, in the blob store."""

    __tablename__ = "job_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(255))
    blob_key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(128))

    job: Mapped[Job] = relationship(back_populates="files")


class JobEvent(Base):
    """One row per state transition: the audit trail (and how tests count successes)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(128), default=None)
    detail: Mapped[str] = mapped_column(Text, default="")


class WebhookDelivery(Base):
    """Outbox row: written in the transaction that finishes a job, sent later with retries."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[str] = mapped_column(String(36))
    url: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(8), default="POST")
    body: Mapped[str | None] = mapped_column(Text, default=None)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sign: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_webhook_due", "state", "next_attempt_at"),)


class PublicFile(Base):
    """A file reachable by an unguessable id without an API key (ConvertAPI's `/d/{FileId}`,
    DocRaptor's `download_url`): an upload, or a published output of a job. Expiry, deletion
    and a download budget are enforced here; the bytes stay in the blob store."""

    __tablename__ = "public_files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), default=None, index=True)
    name: Mapped[str] = mapped_column(String(255))
    blob_key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    downloads_left: Mapped[int | None] = mapped_column(Integer, default=None)

    # one public link per job output: concurrent publishers upsert into it (NULLs, the
    # uploads, never collide)
    __table_args__ = (Index("ux_public_files_job_blob", "job_id", "blob_key", unique=True),)


class DocumentType(Base):
    """A document type: the JSON schema extraction fills, and what identification knows of it.

    A type belongs to one organization (`org_id`), or to none when it ships with Docmill
    (built-in, id `builtin_<code>`). Public types that are not drafts are visible to every
    organization; everything else only to its own."""

    __tablename__ = "document_types"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), default=None)
    code: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    json_schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_public: Mapped[bool] = mapped_column(default=False)
    is_draft: Mapped[bool] = mapped_column(default=True)
    source: Mapped[str] = mapped_column(String(8), default="USER")
    prompt_hints: Mapped[str | None] = mapped_column(Text, default=None)
    identify_prompt_hints: Mapped[str | None] = mapped_column(Text, default=None)
    conversion_mode: Mapped[str] = mapped_column(String(16), default="json")
    keep_property_ordering: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(36), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ux_document_types_org_code", "org_id", "code", unique=True),
        Index("ix_document_types_code", "code"),
    )


class DocTypeExample(Base):
    """The plain text of a sample document that teaches identification a type. Examples are
    private to the organization that added them, even on a public type."""

    __tablename__ = "doc_type_examples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_type_id: Mapped[str] = mapped_column(
        ForeignKey("document_types.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # a labelled example: the values the document holds (the type's schema) and the document
    # as read (`docmill.document/1` JSON), which training needs beyond the text
    expected: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True),
                                                           default=None)
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True),
                                                           default=None)

    __table_args__ = (Index("ix_doc_type_examples_type_org", "doc_type_id", "org_id"),)


class DocTypeModel(Base):
    """A trained extractor of one organization for one type: the `extract.train` job that
    built it (its output is the model file, kept as long as this row). Its state is the job's:
    training while the job runs, usable once it succeeded."""

    __tablename__ = "doc_type_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_type_id: Mapped[str] = mapped_column(
        ForeignKey("document_types.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(64))
    examples: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_doc_type_models_type_org", "doc_type_id", "org_id"),)


class KnowledgeBase(Base):
    """A searchable collection of JSON documents of one organization (Docutray's knowledge
    bases). `name` is unique within the organization."""

    __tablename__ = "knowledge_bases"
    __table_args__ = (Index("ix_knowledge_bases_org_name", "org_id", "name", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    json_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    indexing_preferences: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    synced_at: Mapped[datetime | None] = mapped_column(default=None)


class KnowledgeDocument(Base):
    """One JSON document of a knowledge base; `text` is its content flattened for the
    full-text index (SQLite: the FTS5 table `knowledge_documents_fts`; PostgreSQL: a GIN
    index on `to_tsvector('simple', text)`)."""

    __tablename__ = "knowledge_documents"
    __table_args__ = (Index("ix_knowledge_documents_kb_created", "kb_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"),
                                        index=True)
    document_id: Mapped[str | None] = mapped_column(String(255), default=None)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    doc_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, default=None)
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeTerm(Base):
    """A word that occurs in a knowledge base (migration 0008): where a misspelt query word
    finds its correct spelling, so a typo reaches old documents of a large base too.
    Added as documents are indexed; stale words only cost a wasted lookup, `sync` rebuilds."""

    __tablename__ = "knowledge_terms"

    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"),
                                       primary_key=True)
    term: Mapped[str] = mapped_column(String(64), primary_key=True)


class Pipeline(Base):
    """A pipeline definition of one organization: ordered steps, each an operation of the
    catalogue with its params, its inputs (the run's or earlier steps' outputs), an optional
    `foreach` fan-out and `when` branch (see core/pipelines.py). `name` is unique within the
    organization; a run keeps a copy of the definition it started with."""

    __tablename__ = "pipelines"
    __table_args__ = (Index("ix_pipelines_org_name", "org_id", "name", unique=True),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
