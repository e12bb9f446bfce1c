"""The local dispatcher's pool host, without a web server around it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_interpreter_exits_even_if_the_dispatcher_was_never_stopped(tmp_path):
    """multiprocessing joins its children at exit; the pool host lives until its pipe to the
    server closes, so the pipe must close first or the server would hang on its way out
    (a start-up that failed half-way, uvicorn's forced exit...)."""
    script = textwrap.dedent(f"""
        import os, psutil
        os.environ["DOCMILL_DATA_DIR"] = {str(tmp_path)!r}
        os.environ["DOCMILL_WORKERS"] = "2"
        from docmill.core.migrate import upgrade
        upgrade()
        from docmill.dispatch.local import LocalDispatcher
        from docmill.settings import get_settings
        dispatcher = LocalDispatcher(get_settings())
        dispatcher.start()
        assert dispatcher.host.forked
        print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    import psutil

    pids = [int(pid) for pid in done.stdout.split()]
    assert pids, done.stdout  # the pool host (its workers start with the first job)
    _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)],
                                 timeout=15)
    assert not alive
    assert os.path.exists(tmp_path / "docmill.db")
