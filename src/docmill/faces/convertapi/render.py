"""ConvertAPI's JSON for a job, free of HTTP imports: the vendor's result file names and
the `Files` list (the bytes inline as `FileData`, or the public links of a `StoreFile`
conversion, published by the caller before rendering)."""

from __future__ import annotations

import base64
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from docmill.core import public_files
from docmill.core.files import get_blob_store
from docmill.core.models import Job, JobFile
from docmill.faces.convertapi import converters


def result_names(base: str, outputs: list[JobFile], file_name: str | None) -> list[str]:
    """`<base>.<ext>`, then `<base>-2.<ext>`, `<base>-3.<ext>`... (the vendor's naming)."""
    names = []
    for index, out in enumerate(outputs):
        ext = converters.vendor_ext(PurePosixPath(out.name).suffix) or \
            converters.extension_of_type(out.content_type)
        stem = base
        if file_name:
            path = PurePosixPath(file_name)
            stem = path.stem if converters.vendor_ext(path.suffix) == ext else file_name
        suffix = "" if index == 0 else f"-{index + 1}"
        names.append(f"{stem}{suffix}.{ext}" if ext else f"{stem}{suffix}")
    return names


def files_json(job: Job, base_url: str,
                published: dict[str, public_files.PublicFileInfo]) -> list[dict[str, Any]]:
    state = job.face_state or {}
    outputs = job.files_of("output")
    inputs = job.files_of("input")
    base = PurePosixPath(inputs[0].name).stem if inputs else "result"
    names = result_names(base or "result", outputs, state.get("file_name"))
    files: list[dict[str, Any]] = []
    if state.get("store_file", False):
        for out, name in zip(outputs, names, strict=True):
            file_id = published[out.blob_key].id
            files.append({"FileName": name, "FileExt": PurePosixPath(name).suffix[1:],
                          "FileSize": out.size, "FileId": file_id,
                          "Url": f"{base_url}/d/{file_id}/{quote(name)}"})
    else:
        store = get_blob_store()
        for out, name in zip(outputs, names, strict=True):
            with store.open(out.blob_key) as handle:
                data = base64.b64encode(handle.read()).decode("ascii")
            files.append({"FileName": name, "FileExt": PurePosixPath(name).suffix[1:],
                          "FileSize": out.size, "FileData": data})
    return files


def wants_multipart(accept: str) -> bool:
    """`Accept: multipart/mixed` (ConvertAPI's CLI) unless JSON is asked for as well."""
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return "multipart/mixed" in types and "application/json" not in types
