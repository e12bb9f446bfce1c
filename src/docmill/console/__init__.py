"""The web console at /console: server-rendered pages over the public native API (see
docs/console.md). `mount(app)` serves it; nothing of it is imported while it is off."""

from __future__ import annotations

from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    """Serve the console on `app` (pages, static files, its error pages and timing)."""
    from fastapi.staticfiles import StaticFiles

    from docmill.console import admin, doctypes, jobs, signin, submit
    from docmill.console.pages import (
        HERE,
        Redirect,
        Refused,
        ServerTiming,
        on_redirect,
        on_refused,
        render_error,
    )
    from docmill.faces.common import FaceErrors, register_face_errors

    register_face_errors(FaceErrors(("/console/",), render_error))
    for module in (signin, jobs, submit, doctypes, admin):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    app.add_exception_handler(Redirect, on_redirect)
    app.add_exception_handler(Refused, on_refused)
    app.add_middleware(ServerTiming)
