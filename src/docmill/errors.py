"""The one error hierarchy.

The core, the runner and the engines raise these; each face maps them to its vendor's status
code and body in one place. `code` is the stable machine-readable name stored on failed jobs.
"""

from __future__ import annotations

from typing import Any


class DocmillError(Exception):
    code = "internal_error"

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        self.details = details


class NotFound(DocmillError):
    """The resource does not exist (or belongs to another organization)."""

    code = "not_found"


class Unauthorized(DocmillError):
    """Missing or invalid API key."""

    code = "unauthorized"


class Forbidden(DocmillError):
    """The key is valid but may not do this."""

    code = "forbidden"


class Conflict(DocmillError):
    """The request conflicts with the resource's current state."""

    code = "conflict"


class MethodNotAllowed(DocmillError):
    """The path exists, but not with this HTTP method (`details["allow"]` lists its methods)."""

    code = "method_not_allowed"


class InvalidInput(DocmillError):
    """The request or document is not valid."""

    code = "invalid_input"


class InvalidPipeline(InvalidInput):
    """A pipeline definition refused on save; `details["step"]` names the step at fault."""

    code = "invalid_pipeline"


class TooLarge(DocmillError):
    """The upload exceeds the configured size limit."""

    code = "too_large"


class UnsupportedFormat(DocmillError):
    """The document's real type is not one the operation accepts."""

    code = "unsupported_format"


class UnsafeUrl(InvalidInput):
    """The URL points at an address this server refuses to reach."""

    code = "unsafe_url"


class DownloadFailed(InvalidInput):
    """A URL input could not be downloaded."""

    code = "download_failed"


class PasswordRequired(InvalidInput):
    """The document is encrypted and no (or a wrong) password was given."""

    code = "password_required"


class EngineFailed(DocmillError):
    """The engine could not process the document."""

    code = "engine_failed"


class Timeout(DocmillError):
    """The job ran longer than its timeout."""

    code = "timeout"


class WorkerLost(DocmillError):
    """The worker running the job died on every attempt."""

    code = "worker_lost"
