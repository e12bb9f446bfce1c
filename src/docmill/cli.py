"""The `docmill` command: run the server, manage keys, submit and inspect jobs.

`serve`, `migrate` and `keys` work on the configured database directly (they are the
operator's tools); `submit`, `jobs`, `doctypes` and `pipelines` are HTTP clients of a running
server, like any user.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Docmill: self-hosted asynchronous document processing.",
                  no_args_is_help=True)
keys_app = typer.Typer(help="API keys (stored hashed; a key is shown once).", no_args_is_help=True)
jobs_app = typer.Typer(help="Jobs on a running server.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")
doctypes_app = typer.Typer(help="Document types on a running server.", no_args_is_help=True)
app.add_typer(doctypes_app, name="doctypes")
pipelines_app = typer.Typer(help="Pipelines and their runs on a running server.",
                            no_args_is_help=True)
app.add_typer(pipelines_app, name="pipelines")
console = Console()
err = Console(stderr=True)

ServerOpt = Annotated[str, typer.Option("--server", envvar="DOCMILL_SERVER",
                                        help="Base URL of the Docmill server.")]
KeyOpt = Annotated[str | None, typer.Option("--key", envvar="DOCMILL_API_KEY",
                                               help="API key (or DOCMILL_API_KEY).")]
DEFAULT_SERVER = "http://127.0.0.1:8000"


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from docmill.core.migrate import upgrade
    from docmill.settings import get_settings

    upgrade()
    from docmill.core.doctypes import seed_builtin_types

    seed_builtin_types()
    console.print(f"database at [bold]{_redact(get_settings().database_url)}[/bold] is up to date")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


def _migrate_on_start() -> None:
    """Bring the schema up to date before taking work (`serve` and `worker`), in a child so
    that Alembic stays out of the long-running process; on PostgreSQL an advisory lock makes
    processes that start together migrate once."""
    from docmill.core.migrate import MigrationFailed, upgrade_in_child

    try:
        upgrade_in_child()
    except MigrationFailed as exc:
        _fail(exc.message)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int | None, typer.Option(help="Local worker processes.")] = None,
    no_workers: Annotated[bool, typer.Option("--no-workers",
                                             help="Run the API only.")] = False,
) -> None:
    """Run the API server with its local worker pool."""
    import uvicorn

    from docmill.core.auth import any_key_exists, create_key
    from docmill.core.models import Role
    from docmill.settings import get_settings

    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"DOCMILL_{name}"] = str(value)
    get_settings.cache_clear()
    settings = get_settings()
    _migrate_on_start()
    console.print(f"Docmill on [bold]http://{settings.host}:{settings.port}[/bold]  "
                  f"(docs at /docs)")
    console.print(f"data folder: [bold]{settings.data_dir.resolve()}[/bold]  "
                  f"database: {_redact(settings.database_url)}")
    if not any_key_exists():
        key, info = create_key(settings.bootstrap_org, Role.ADMIN, name="bootstrap admin")
        console.print(f"first start: admin API key for organization '{info.org_slug}' "
                      f"(shown once, keep it):\n  [bold green]{key}[/bold green]")
    from docmill.app import create_app

    # ws="none": no API here is a WebSocket (progress streams are Server-Sent Events), so the
    # websockets protocol is not loaded into the server and every worker forked from it.
    uvicorn.run(create_app(run_workers=not no_workers), host=settings.host, port=settings.port,
                log_level="info", ws="none",
                timeout_graceful_shutdown=int(settings.shutdown_grace_s))


@app.command()
def worker(
    queues: Annotated[str | None, typer.Option(
        help="Comma-separated Celery queues to consume (default: all).")] = None,
    concurrency: Annotated[int | None, typer.Option(
        help="Worker processes (default: DOCMILL_WORKERS).")] = None,
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
) -> None:
    """Run a Celery worker (DOCMILL_DISPATCHER=celery) with Docmill's settings."""
    from docmill.dispatch.celery_app import all_queues, celery_app
    from docmill.settings import get_settings

    settings = get_settings()
    if settings.dispatcher != "celery":
        _fail("`docmill worker` needs DOCMILL_DISPATCHER=celery (the local dispatcher runs its "
              "workers inside `docmill serve`)")
    # like `serve`: the first process of a new release to start brings the schema up to date
    _migrate_on_start()
    from docmill import dispatch
    from docmill.dispatch.celery_app import CeleryDispatcher

    dispatch.install(CeleryDispatcher())  # a finished pipeline step sends the next ones
    argv = ["worker", "--loglevel=INFO", "-O", "fair",
            "-Q", queues or ",".join(all_queues(settings)),
            "-c", str(concurrency or max(1, settings.workers))]
    if hostname:
        argv += ["-n", hostname]
    celery_app().worker_main(argv)


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="Organization slug (created if new).")],
    admin: Annotated[bool, typer.Option("--admin", help="Give the key the admin role.")] = False,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    from docmill.core.auth import create_key
    from docmill.core.migrate import upgrade
    from docmill.core.models import Role
    from docmill.errors import DocmillError

    upgrade()
    try:
        key, info = create_key(org, Role.ADMIN if admin else Role.USER, name)
    except DocmillError as exc:
        _fail(exc.message)
    err.print(f"created {info.role} key {info.prefix} for '{info.org_slug}' (shown once):")
    print(key)


@keys_app.command("list")
def keys_list(org: Annotated[str | None, typer.Option(help="Only this organization.")] = None
              ) -> None:
    """List keys (prefixes only; the keys themselves are not stored)."""
    from docmill.core.auth import list_keys

    table = Table("prefix", "org", "role", "name", "created", "last used", "revoked")
    for info in list_keys(org):
        table.add_row(info.prefix, info.org_slug, info.role, info.name, info.created_at[:19],
                      (info.last_used_at or "")[:19], "yes" if info.revoked else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(prefix: Annotated[str, typer.Argument(help="The key's prefix or id.")]) -> None:
    """Revoke a key at once."""
    from docmill.core.auth import revoke_key
    from docmill.errors import DocmillError

    try:
        info = revoke_key(prefix)
    except DocmillError as exc:
        _fail(exc.message)
    console.print(f"revoked key {info.prefix} of '{info.org_slug}'")


# --- HTTP client commands -----------------------------------------------------------------

def _client(server: str, key: str | None) -> httpx.Client:
    if not key:
        _fail("an API key is needed: --key or DOCMILL_API_KEY")
    return httpx.Client(base_url=server, headers={"Authorization": f"Bearer {key}"},
                        timeout=httpx.Timeout(60, connect=10), trust_env=False)


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            _fail(f"{error['code']}: {error['message']}")
        except (ValueError, KeyError, TypeError):
            _fail(f"HTTP {response.status_code}: {response.text[:300]}")
    return response.json() if response.content else None


def _parse_param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        _fail(f"--param takes name=value, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name, value


@app.command()
def submit(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    op: Annotated[str, typer.Option("--op", help="Operation, e.g. pdf.to-image.")],
    param: Annotated[list[str] | None, typer.Option("--param", help="name=value (JSON values"
                                                        " allowed); repeatable.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress and fetch outputs.")] = False,
    out: Annotated[Path, typer.Option(help="Folder for downloaded outputs.")] = Path("."),
    server: ServerOpt = DEFAULT_SERVER,
    key: KeyOpt = None,
) -> None:
    """Submit FILES as one job."""
    params = dict(_parse_param(p) for p in (param or []))
    with _client(server, key) as client:
        handles = [path.open("rb") for path in files]
        try:
            job = _check(client.post(
                "/v1/jobs", data={"operation": op, "params": json.dumps(params)},
                files=[("file", (path.name, handle))
                       for path, handle in zip(files, handles, strict=True)]))
        finally:
            for handle in handles:
                handle.close()
        _finish(client, job, wait, out)


def _finish(client: httpx.Client, job: dict[str, Any], wait: bool, out: Path) -> None:
    """Print the job, or follow it to its end and download its outputs into `out`."""
    if not wait:
        console.print_json(data=job)
        return
    job = _follow(client, job)
    if job["status"] != "SUCCESS":
        error = job.get("error") or {}
        _fail(f"job {job['id']} {job['status']}: {error.get('code')}: {error.get('message')}")
    out.mkdir(parents=True, exist_ok=True)
    for item in job["files"]:
        target = out / item["name"]
        with client.stream("GET", item["url"]) as response, target.open("wb") as sink:
            if response.status_code != 200:
                _fail(f"download of {item['name']} answered HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                sink.write(chunk)
        print(target)  # plain, one per line: scripts read these


def _follow(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    columns = (TextColumn("[bold]{task.fields[status]}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(job.get("message", ""), total=100, status=job["status"])
        while True:
            bar.update(task, completed=job["progress"], description=job.get("message") or "",
                       status=job["status"])
            if job["status"] in ("SUCCESS", "ERROR", "EXPIRED", "DELETED"):
                return job
            time.sleep(0.25)
            job = _check(client.get(f"/v1/jobs/{job['id']}"))


@jobs_app.command("ls")
def jobs_ls(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    operation: Annotated[str | None, typer.Option(help="Only this operation.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    server: ServerOpt = DEFAULT_SERVER,
    key: KeyOpt = None,
) -> None:
    """List recent jobs."""
    query = {k: v for k, v in {"status": status, "operation": operation, "limit": limit}.items()
             if v is not None}
    with _client(server, key) as client:
        page = _check(client.get("/v1/jobs", params=query))
    table = Table("id", "operation", "status", "progress", "created", "message")
    for job in page["jobs"]:
        table.add_row(job["id"], job["operation"], job["status"], f"{job['progress']}%",
                      job["created_at"][:19], (job.get("message") or "")[:60])
    console.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, server: ServerOpt = DEFAULT_SERVER, key: KeyOpt = None) -> None:
    """Show one job as JSON."""
    with _client(server, key) as client:
        console.print_json(data=_check(client.get(f"/v1/jobs/{job_id}")))


@jobs_app.command("rm")
def jobs_rm(job_id: str, server: ServerOpt = DEFAULT_SERVER, key: KeyOpt = None) -> None:
    """Delete a job and its files."""
    with _client(server, key) as client:
        _check(client.delete(f"/v1/jobs/{job_id}"))
    console.print(f"deleted {job_id}")


@doctypes_app.command("ls")
def doctypes_ls(
    search: Annotated[str | None, typer.Option(help="Filter on name, code, description.")] = None,
    limit: Annotated[int, typer.Option(help="How many (at most 100).")] = 100,
    server: ServerOpt = DEFAULT_SERVER,
    key: KeyOpt = None,
) -> None:
    """List the document types this key can use."""
    query: dict[str, Any] = {"limit": limit, **({"search": search} if search else {})}
    with _client(server, key) as client:
        page = _check(client.get("/v1/document-types", params=query))
    table = Table("code", "name", "public", "draft", "source", "examples", "fields")
    for item in page["document_types"]:
        fields = len((item.get("schema") or {}).get("properties") or {})
        table.add_row(item["code"], item["name"], "yes" if item["is_public"] else "",
                      "yes" if item["is_draft"] else "", item["source"],
                      str(item.get("examples", 0)), str(fields))
    console.print(table)
    err.print(f"{len(page['document_types'])} of {page['total']}")


@doctypes_app.command("show")
def doctypes_show(code: str, server: ServerOpt = DEFAULT_SERVER, key: KeyOpt = None) -> None:
    """Show one document type (by code or id) as JSON."""
    with _client(server, key) as client:
        console.print_json(data=_check(client.get(f"/v1/document-types/{code}")))


@doctypes_app.command("create")
def doctypes_create(
    code: Annotated[str, typer.Option(
        help="Code: [a-z0-9_]+, '<org slug>_' first for non-admins.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    schema: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                         help="JSON Schema file of the fields.")],
    description: Annotated[str, typer.Option(help="What the documents are.")] = "",
    keyword: Annotated[list[str] | None, typer.Option(help="Identification keyword; "
                                                          "repeatable.")] = None,
    public: Annotated[bool, typer.Option("--public", help="Publish (admins only).")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    key: KeyOpt = None,
) -> None:
    """Create a document type from a JSON Schema file (published, not a draft)."""
    try:
        schema_doc = json.loads(schema.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        _fail(f"cannot read the schema: {exc}")
    body = {"code": code, "name": name, "description": description or name,
            "schema": schema_doc, "keywords": keyword or [], "is_draft": False,
            "is_public": public}
    with _client(server, key) as client:
        console.print_json(data=_check(client.post("/v1/document-types", json=body)))


def _definition(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        _fail(f"cannot read the definition: {exc}")


DefinitionArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=(
    "JSON file: {name, description?, steps: [...]} (docs/pipelines.md)."))]


@pipelines_app.command("ls")
def pipelines_ls(server: ServerOpt = DEFAULT_SERVER, key: KeyOpt = None) -> None:
    """List the organization's pipelines."""
    with _client(server, key) as client:
        rows = _check(client.get("/v1/pipelines"))["pipelines"]
    table = Table("id", "name", "steps", "version", "updated")
    for row in rows:
        table.add_row(row["id"], row["name"], " -> ".join(s["id"] for s in row["steps"]),
                      str(row["version"]), row["updated_at"][:19])
    console.print(table)


@pipelines_app.command("show")
def pipelines_show(ref: str, server: ServerOpt = DEFAULT_SERVER, key: KeyOpt = None) -> None:
    """Show one pipeline (by id or name) as JSON."""
    with _client(server, key) as client:
        console.print_json(data=_check(client.get(f"/v1/pipelines/{ref}")))


@pipelines_app.command("create")
def pipelines_create(definition: DefinitionArg, server: ServerOpt = DEFAULT_SERVER,
                     key: KeyOpt = None) -> None:
    """Create a pipeline from a JSON definition (checked by the server)."""
    with _client(server, key) as client:
        console.print_json(data=_check(client.post("/v1/pipelines", json=_definition(definition))))


@pipelines_app.command("update")
def pipelines_update(ref: str, definition: DefinitionArg, server: ServerOpt = DEFAULT_SERVER,
                     key: KeyOpt = None) -> None:
    """Replace a pipeline's name, description or steps with those of a JSON file."""
    with _client(server, key) as client:
        console.print_json(data=_check(client.put(f"/v1/pipelines/{ref}",
                                                  json=_definition(definition))))


@pipelines_app.command("rm")
def pipelines_rm(ref: str, server: ServerOpt = DEFAULT_SERVER, key: KeyOpt = None) -> None:
    """Delete a pipeline (its runs stay until deleted or expired)."""
    with _client(server, key) as client:
        _check(client.delete(f"/v1/pipelines/{ref}"))
    console.print(f"deleted {ref}")


@pipelines_app.command("run")
def pipelines_run(
    ref: str,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    wait: Annotated[bool, typer.Option("--wait", help="Show progress and fetch outputs.")] = False,
    out: Annotated[Path, typer.Option(help="Folder for downloaded outputs.")] = Path("."),
    server: ServerOpt = DEFAULT_SERVER,
    key: KeyOpt = None,
) -> None:
    """Run pipeline REF on FILES."""
    with _client(server, key) as client:
        handles = [path.open("rb") for path in files]
        try:
            run = _check(client.post(
                f"/v1/pipelines/{ref}/runs",
                files=[("file", (path.name, handle))
                       for path, handle in zip(files, handles, strict=True)]))
        finally:
            for handle in handles:
                handle.close()
        _finish(client, run, wait, out)


@pipelines_app.command("cancel")
def pipelines_cancel(run_id: str, server: ServerOpt = DEFAULT_SERVER,
                     key: KeyOpt = None) -> None:
    """Cancel a run: its steps stop and are removed."""
    with _client(server, key) as client:
        console.print_json(data=_check(client.post(f"/v1/runs/{run_id}/cancel")))


def main() -> None:  # pragma: no cover - entry point
    app(prog_name="docmill")


if __name__ == "__main__":  # pragma: no cover
    main()
