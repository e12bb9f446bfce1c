"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL: a
column or index added to `core/models.py` without a migration (or the reverse) fails here,
not on a user's upgraded database."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from docmill.core.migrate import upgrade
from docmill.core.models import Base

PG_ADMIN = os.environ.get("DOCMILL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres") \
    .replace("postgresql://", "postgresql+psycopg://")
# Made by the migrations, mapped by no model: SQLite's FTS5 index (and its shadow tables) and
# PostgreSQL's GIN index over an expression (`to_tsvector('simple', text)`).
UNMAPPED_TABLES = ("knowledge_documents_fts",)
UNMAPPED_INDEXES = ("ix_knowledge_documents_tsv",)


def _differences(url: str) -> list:
    upgrade(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    return [d for d in diffs
            if not (d[0] == "remove_table" and d[1].name.startswith(UNMAPPED_TABLES))
            and not (d[0] == "remove_index" and d[1].name in UNMAPPED_INDEXES)]


def test_sqlite_schema_matches_the_models(tmp_path):
    assert _differences(f"sqlite:///{tmp_path / 'schema.db'}") == []


def test_postgres_schema_matches_the_models():
    name = f"docmill_schema_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - the test machines have it
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    try:
        assert _differences(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}") == []
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
