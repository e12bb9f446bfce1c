"""FastAPI app factory: mounts the faces, one error handler, health and metrics, and runs the
dispatcher and sweeper for the life of the server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from docmill import __version__, bootstrap, dispatch, errors
from docmill.core import sweeper as sweeper_mod
from docmill.core.db import session_scope
from docmill.faces.common import BodyLimitMiddleware, renderer_for
from docmill.faces.contract import method_not_allowed, published_schema
from docmill.faces.convertapi.routes import build_router as convertapi_router
from docmill.faces.docraptor import routes as docraptor
from docmill.faces.docutray.routes import build_router as docutray_router
from docmill.faces.expertai import routes as expertai
from docmill.faces.native import errors as native_errors
from docmill.faces.native import (
    routes_admin,
    routes_doctypes,
    routes_jobs,
    routes_knowledge,
    routes_pipelines,
)
from docmill.settings import get_settings

log = logging.getLogger("docmill")


def create_app(*, run_workers: bool = True, run_sweeper: bool = True) -> FastAPI:
    settings = get_settings()
    bootstrap.load_webhook_builders()  # before the pool host forks from this process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Seeded before the dispatcher starts, on this thread: the local pool is forked from
        # this process while it has no other thread, and what start-up allocates before the
        # fork is shared with the workers instead of copied.
        _seed_document_types()
        dispatcher = dispatch.install(dispatch.build(no_workers=not run_workers))
        sweeper = sweeper_mod.Sweeper() if run_sweeper else None
        try:
            dispatcher.start()
            if sweeper:
                sweeper.start()
            app.state.dispatcher = dispatcher
            yield
        finally:
            try:
                if sweeper:
                    sweeper.stop()
            finally:
                await run_in_threadpool(dispatcher.stop, settings.shutdown_grace_s)

    # Swagger UI at /swagger: DocRaptor's face owns /docs.
    app = FastAPI(title="Docmill", version=__version__, lifespan=lifespan,
                  description="Self-hosted asynchronous document processing.",
                  docs_url="/swagger", swagger_ui_oauth2_redirect_url="/swagger/oauth2-redirect")
    app.openapi = lambda: published_schema(app)  # type: ignore[method-assign]
    # Room for base64's 4/3 growth and form fields on top of the largest allowed file.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes * 4 // 3 + (1 << 20))
    app.add_middleware(expertai.FoldSlashes)

    @app.exception_handler(errors.DocmillError)
    async def docmill_error(request: Request, exc: errors.DocmillError) -> Response:
        render = renderer_for(request.url.path) or native_errors.render_error
        response = render(request, exc)
        if isinstance(exc, errors.MethodNotAllowed):
            response.headers["Allow"] = ", ".join(exc.details.get("allow") or ())
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """Starlette's 405 (a path with other methods only) and 404 (no route) in the shape
        of the face owning the path, a 405 with the path's documented methods as `Allow`;
        elsewhere as FastAPI answers them."""
        refused = method_not_allowed(request) if exc.status_code == 405 else None
        if refused is not None:
            return await docmill_error(request, refused)
        if exc.status_code == 404 and renderer_for(request.url.path):
            # a path under a face that no route matches: the face's own 404
            return await docmill_error(request, errors.NotFound(
                f"No endpoint {request.method} {request.url.path}."))
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                    for e in exc.errors()]
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return await docmill_error(request, errors.InvalidInput(message, problems=problems))

    app.include_router(routes_jobs.router)
    app.include_router(routes_admin.router)
    app.include_router(docraptor.router)
    app.include_router(convertapi_router())
    app.include_router(expertai.router)
    app.include_router(routes_doctypes.router)
    app.include_router(routes_knowledge.router)
    app.include_router(routes_pipelines.router)
    app.include_router(docutray_router())
    if settings.console_enabled:
        from docmill.console import mount as mount_console

        mount_console(app)

    @app.get("/healthz", tags=["ops"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="The database answers and workers run",
             responses={503: {"description": "The database does not answer"}})
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, Any] = {}
        try:
            await run_in_threadpool(_ping_database)
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - report, don't crash
            checks["database"] = f"error: {type(exc).__name__}"
        dispatcher = getattr(request.app.state, "dispatcher", None)
        checks["dispatcher"] = type(dispatcher).__name__ if dispatcher else "none"
        ok = checks["database"] == "ok"
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics",
             response_class=PlainTextResponse, responses={200: {
                 "description": "The Prometheus text format",
                 "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        from docmill.core import metrics as _metrics  # noqa: F401 - registers collectors

        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _seed_document_types() -> None:
    """The built-in public document types, created or refreshed at every start."""
    from docmill.core.doctypes import seed_builtin_types

    try:
        seed_builtin_types()
    except Exception:  # noqa: BLE001 - a server without them still serves everything else
        log.exception("could not seed the built-in document types")


def _ping_database() -> None:
    with session_scope(readonly=True) as session:
        session.execute(text("SELECT 1"))
