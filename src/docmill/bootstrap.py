"""What every Docmill process loads before it can end a job: the faces' webhook builders.

`core/webhooks.py` holds the registry and names no face; this list does, and the process
bootstraps (the app, the local pool host, the Celery worker) load it. Only each face's
HTTP-free `webhook.py` is imported, so a worker never pulls in FastAPI to build a webhook.
"""

from __future__ import annotations

import importlib

WEBHOOK_MODULES = (
    "docmill.faces.native.webhook",
    "docmill.faces.convertapi.webhook",
    "docmill.faces.docraptor.webhook",
    "docmill.faces.docutray.webhook",
)


def load_webhook_builders() -> None:
    """Import each face's webhook module; each registers its builder (idempotent)."""
    for name in WEBHOOK_MODULES:
        importlib.import_module(name)
