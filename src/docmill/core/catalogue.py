"""The operation catalogue as faces see it (what this server can do, with its parameter
schemas), so that no face reaches into the engine registry itself."""

from __future__ import annotations

from typing import Any

from docmill.engines.base import Operation
from docmill.engines.registry import operations as _registered

__all__ = ["Operation", "describe_operations", "operation_names", "operations"]


def operations() -> dict[str, Operation]:
    """Every operation by name, in registry order (the order a face's first match uses)."""
    return _registered()


def operation_names() -> list[str]:
    return sorted(_registered())


def describe_operations() -> list[dict[str, Any]]:
    """`GET /v1/operations`: each operation's description, types and params schema."""
    return [op.describe() for op in _registered().values()]
