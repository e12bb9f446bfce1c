"""The one way a face hands out a stored file: streamed from the blob store (a local file
straight from disk) with an RFC 6266 `Content-Disposition`, so that every client, old or
new, gets the right file name whatever its characters."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from docmill import errors
from docmill.core.files import get_blob_store

CHUNK = 1 << 20


def ascii_fallback(name: str) -> str:
    """`filename="..."` for clients that ignore `filename*`: printable ASCII only, without
    the quote and backslash a quoted-string would have to escape."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)


def content_disposition(disposition: str, name: str) -> str:
    """`attachment; filename="my file _.pdf"; filename*=UTF-8''my%20file%20%C3%A9.pdf`."""
    return (f'{disposition}; filename="{ascii_fallback(name)}"; '
            f"filename*=UTF-8''{quote(name, safe='')}")


def iter_blob(blob_key: str) -> Iterator[bytes]:
    """The blob's bytes in chunks, the handle closed at the end (or when abandoned)."""
    with get_blob_store().open(blob_key) as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


async def stream_blob(blob_key: str, content_type: str, name: str, *,
                      disposition: str = "attachment", size: int | None = None,
                      status_code: int = 200) -> Response:
    """The response that downloads a blob; NotFound if it is gone (its job expired)."""
    store = get_blob_store()
    headers = {"Content-Disposition": content_disposition(disposition, name)}
    path = store.filesystem_path(blob_key)
    if path is not None:
        if not path.exists():
            raise errors.NotFound("File not found.")
        return FileResponse(path, status_code=status_code, media_type=content_type,
                            headers=headers)
    try:
        handle = await run_in_threadpool(store.open, blob_key)
    except Exception:  # noqa: BLE001 - its job was deleted or expired
        raise errors.NotFound("File not found.") from None

    def chunks() -> Iterator[bytes]:
        with handle:
            yield from iter(lambda: handle.read(CHUNK), b"")

    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks(), status_code=status_code, media_type=content_type,
                             headers=headers)
