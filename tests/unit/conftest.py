"""Fixtures shared by the unit tests that need a real, migrated database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server import create_pg_database, drop_pg_database

BACKENDS = [b for b in os.environ.get("DOCMILL_TEST_BACKENDS", "sqlite,postgres").split(",") if b]


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path, monkeypatch):
    url = (create_pg_database() if request.param == "postgres"
           else f"sqlite:///{tmp_path / 'race.db'}")
    monkeypatch.setenv("DOCMILL_DATABASE_URL", url)
    monkeypatch.setenv("DOCMILL_DATA_DIR", str(tmp_path))
    from docmill.settings import get_settings

    get_settings.cache_clear()
    from docmill.core.migrate import upgrade

    upgrade(url)
    yield url
    get_settings.cache_clear()
    if request.param == "postgres":
        from docmill.core.db import get_engine

        get_engine().dispose()
        drop_pg_database(url)
