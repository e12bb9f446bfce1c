"""Several processes migrating one fresh PostgreSQL database at once (an API and its workers
starting together, the containers of compose.yaml): one migrates, the others wait for it and
find nothing left to do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from server import create_pg_database, drop_pg_database


@pytest.mark.postgres
def test_concurrent_migrations_of_a_fresh_database(tmp_path):
    url = create_pg_database()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
        env.update({"DOCMILL_DATABASE_URL": url, "DOCMILL_DATA_DIR": str(tmp_path)})
        runs = [subprocess.Popen([sys.executable, "-m", "docmill.cli", "migrate"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for _ in range(4)]
        outputs = [(run.wait(timeout=180), run.stdout.read()) for run in runs]
        for code, output in outputs:
            assert code == 0, output[-3000:]
            assert "is up to date" in output
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            assert len(conn.execute("SELECT version_num FROM alembic_version").fetchall()) == 1
    finally:
        drop_pg_database(url)
