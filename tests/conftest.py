"""Shared fixtures: a real Docmill server per database backend, keys for two organizations.

`DOCMILL_TEST_BACKENDS` (default "sqlite,postgres,distributed") picks the backends. A test that
uses `server` runs once, on the first of them (SQLite unless left out), unless it or its module
is marked `@pytest.mark.backends("all")`: then once per backend. Only what can depend on the
database or the dispatcher is so marked (lifecycle, isolation, faults, webhooks, distributed,
pipelines, teaching, search, admin queries): translation is the same on every backend, and
running it three times only tripled the suite. "distributed" is PostgreSQL + Celery on Redis +
SeaweedFS S3 with two `docmill worker` processes and an API process. A module marked `fast` (the
fast layer, `pytest -m fast`) gets instead the app in the test process on SQLite, whatever the
backends.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from server import DATA, DocmillServer

BACKENDS = [b for b in os.environ.get("DOCMILL_TEST_BACKENDS",
                                     "sqlite,postgres,distributed").split(",") if b]
_seaweed = None
_servers: dict[str, DocmillServer] = {}  # the session's real servers, by backend


def s3_env() -> dict[str, str]:
    """A fresh prefix in the session's SeaweedFS bucket (the server starts on first use)."""
    global _seaweed
    import tempfile
    import uuid

    from services import SeaweedS3

    if _seaweed is None:
        _seaweed = SeaweedS3(Path(tempfile.mkdtemp(prefix="docmill-seaweed-")))
    return _seaweed.env(f"instance-{uuid.uuid4().hex[:12]}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", 'backends(which): "all" runs a test using `server` on every backend of '
        "DOCMILL_TEST_BACKENDS; unmarked, it runs on the first (SQLite) only")
    config.addinivalue_line(
        "markers", "fast: the fast layer (`pytest -m fast`); its `server` is the app in the "
        "test process on SQLite (tests/inprocess.py)")


def backends_for(node: pytest.Function) -> list[str]:
    """The backends a test using `server` runs on, from its (or its module's) marker."""
    if node.get_closest_marker("fast"):
        return ["inprocess"]
    marker = node.get_closest_marker("backends")
    which = marker.args[0] if marker else "one"
    if which == "all":
        return BACKENDS
    if which != "one":
        raise pytest.UsageError(f'{node.nodeid}: backends({which!r}): use "all" or no marker')
    return BACKENDS[:1] if "sqlite" not in BACKENDS else ["sqlite"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server" in metafunc.fixturenames:
        metafunc.parametrize("server", backends_for(metafunc.definition), indirect=True,
                             scope="session")


def xdist_scope(nodeid: str) -> str:
    """The tests pytest-xdist (`-n`) runs on one worker, one after another: those of the
    in-process app (it sets the process's DOCMILL_* settings while it runs), and else those of
    one module (its tests may build on each other's state, and its module-scoped servers
    start once)."""
    if "[" in nodeid and "inprocess" in nodeid[nodeid.index("[") + 1:-1].split("-"):
        return "inprocess"
    return nodeid.split("::", 1)[0]


# The modules that take longest (over a minute of a worker's time each, measured in CI
# rehearsals), longest first: under pytest-xdist they start first, so that no worker is left
# with one of them while the others have finished (xdist would order modules by their number
# of tests, which put these last)
LONG_MODULES = [
    "tests/api/test_teaching.py", "tests/api/test_pipelines.py", "tests/api/test_convertapi.py",
    "tests/api/test_console.py", "tests/unit/test_ocr.py", "tests/api/test_lifecycle.py",
    "tests/api/test_faults.py", "tests/api/test_admin_api.py", "tests/api/test_docraptor.py",
    "tests/api/test_docutray.py", "tests/api/test_distributed.py", "tests/unit/test_extract.py",
    "tests/unit/test_identify.py",
]


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {module: n for n, module in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Whatever `--dist` says: xdist's own groups (xdist_group marks, `--dist loadgroup`)
    do nothing with pytest 9, whose node ids it can no longer extend. The scopes go out in
    the workers' collection order (LONG_MODULES first)."""
    from xdist.scheduler import LoadScopeScheduling

    class ScopeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    config.option.loadscopereorder = False
    return ScopeScheduling(config, log)


_inprocess: list = []  # the in-process server while it runs
_last_inprocess_test: list[str] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Note the last test (in run order) of the in-process server, to stop it right after."""
    users = [item.nodeid for item in session.items
             if getattr(getattr(item, "callspec", None), "params", {}).get("server") == "inprocess"]
    _last_inprocess_test[:] = users[-1:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Stop the in-process app after its last test, not at the end of the session: its
    dispatcher and sweeper read the process's settings, which later tests set to their own."""
    yield
    if _inprocess and [item.nodeid] == _last_inprocess_test:
        _inprocess.pop().stop()


def pytest_sessionfinish(session, exitstatus):
    while _servers:
        _servers.popitem()[1].destroy()
    if _seaweed is not None:
        _seaweed.stop()


@pytest.fixture(scope="session", autouse=True)
def shared_reads(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Under pytest-xdist, the corpus documents tests/extract_corpus.py reads are read once
    per run, not once per worker: in a folder of this run's temporary directory (the parent
    of every worker's): a later run has a new one, so nothing read carries over."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["DOCMILL_TEST_READ_CACHE"] = str(
            tmp_path_factory.getbasetemp().parent / "corpus-reads")


@pytest.fixture(scope="session")
def data() -> Path:
    assert DATA.is_dir(), f"test documents not found at {DATA}"
    return DATA


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if request.param == "inprocess":
        from inprocess import InProcessServer

        srv = InProcessServer(tmp_path_factory.mktemp("server-inprocess"))
        _inprocess[:] = [srv]
        _provision(srv)
        yield srv
        srv.destroy()
        return
    # A real server runs until the session ends, not until the next test of another backend:
    # under pytest-xdist a worker's modules alternate between backends, and each switch would
    # otherwise stop one server and start another (the distributed one takes many seconds)
    srv = _servers.get(request.param)
    if srv is None:
        srv = DocmillServer(tmp_path_factory.mktemp(f"server-{request.param}"),
                            backend=request.param,
                            s3_env=s3_env() if request.param == "distributed" else {})
        try:
            _provision(srv)
        except BaseException:
            srv.destroy()
            raise
        _servers[request.param] = srv
    yield srv


def _provision(srv: DocmillServer) -> None:
    srv.cli("migrate")
    srv.create_key("acme", admin=True)
    srv.create_key("globex")
    srv.start()


@pytest.fixture
def acme(server: DocmillServer):
    with server.client("acme") as client:
        yield client


@pytest.fixture
def globex(server: DocmillServer):
    with server.client("globex") as client:
        yield client


@pytest.fixture
def make_server(tmp_path: Path, request: pytest.FixtureRequest):
    """A private server for tests that kill or restart it."""
    made: list[DocmillServer] = []

    def make(backend: str = "sqlite", **env: str) -> DocmillServer:
        srv = DocmillServer(tmp_path / f"srv{len(made)}", backend=backend, extra_env=env,
                            s3_env=s3_env() if backend == "distributed" else {})
        srv.provision({"acme": True})
        made.append(srv)
        return srv

    yield make
    for srv in made:
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(srv.log_tail())
        srv.destroy()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
