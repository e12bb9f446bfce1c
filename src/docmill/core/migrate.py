"""Alembic, driven from code: `docmill migrate` and server start-up both call `upgrade()`.

Alembic is imported inside the functions: the server runs its start-up migration in a
short-lived child (`upgrade_in_child`), so Alembic and Mako (about 10 MB) never stay resident
in the long-running process.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import TYPE_CHECKING

from docmill.errors import DocmillError
from docmill.settings import get_settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class MigrationFailed(DocmillError):
    """The database could not be brought up to date."""

    code = "migration_failed"


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url",
                           (url or get_settings().database_url).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def upgrade_in_child(url: str | None = None) -> None:
    """`upgrade()` in a child process; the child's traceback, if any, goes to stderr.

    Forked where the platform allows it (cheap: the child already has everything but Alembic
    imported); the caller must not have started threads yet."""
    context = (multiprocessing.get_context("fork")
               if "fork" in multiprocessing.get_all_start_methods()
               else multiprocessing.get_context("spawn"))
    child = context.Process(target=upgrade, args=(url,), name="docmill-migrate")
    child.start()
    child.join()
    if child.exitcode != 0:
        raise MigrationFailed(f"the database migration failed (exit code {child.exitcode}); "
                              "its error is printed above")
