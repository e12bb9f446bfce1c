"""Alembic environment: the models' metadata and the URL handed in by docmill.core.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from docmill.core.db import make_engine
from docmill.core.models import Base

config = context.config
target_metadata = Base.metadata
MIGRATION_LOCK_KEY = 0x646F636D696C6C  # "docmill"


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Processes starting together (an API and its workers, the containers of
                # compose.yaml) would race to create the same tables: one migrates, the others
                # wait here until it commits and then find nothing left to do.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
