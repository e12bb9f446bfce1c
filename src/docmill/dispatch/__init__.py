"""Dispatchers move job ids to workers; `current()` is this process's one."""

from __future__ import annotations

from docmill.dispatch.base import Dispatcher, NullDispatcher

_current: Dispatcher = NullDispatcher()


def current() -> Dispatcher:
    return _current


def install(dispatcher: Dispatcher) -> Dispatcher:
    global _current
    _current = dispatcher
    return dispatcher


def build(no_workers: bool = False) -> Dispatcher:
    """The dispatcher the settings ask for."""
    from docmill.core.runs import notify_changed
    from docmill.settings import get_settings

    settings = get_settings()
    if settings.dispatcher == "celery":  # workers are `docmill worker` processes
        from docmill.dispatch.celery_app import CeleryDispatcher

        return CeleryDispatcher()
    if no_workers or settings.workers == 0:
        return NullDispatcher()
    from docmill.dispatch.local import LocalDispatcher

    return LocalDispatcher(settings, on_change=notify_changed)
