"""Archives: put any inputs into one ZIP file (ConvertAPI's `any -> zip`)."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from docmill.engines.base import (
    Engine,
    EngineInput,
    EngineOutput,
    EngineResult,
    Operation,
    Params,
    Progress,
    output_stem,
)


class ZipParams(Params):
    pass


def unique_names(names: Sequence[str]) -> list[str]:
    """The names as given, a repeated one numbered like a file manager does: `a (2).pdf`."""
    seen: set[str] = set()
    result = []
    for name in names:
        candidate, n = name, 1
        while candidate.lower() in seen:
            n += 1
            path = PurePosixPath(name)
            candidate = f"{path.stem} ({n}){path.suffix}"
        seen.add(candidate.lower())
        result.append(candidate)
    return result


class ArchiveEngine(Engine):
    name = "archive"
    operations = (
        Operation("archive.zip", "Put the input files, whatever their type, into one ZIP "
                  "archive.", ZipParams, frozenset({"*/*"}), ("zip",), min_inputs=1,
                  max_inputs=1000, engine="archive"),
    )

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        out = workdir / f"{output_stem(inputs[0].name)}.zip"
        names = unique_names([item.name for item in inputs])
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6,
                             allowZip64=True) as archive:
            for done, (item, name) in enumerate(zip(inputs, names, strict=True)):
                archive.write(item.path, arcname=name)
                progress(100 * (done + 1) / len(inputs), f"added {name}")
        return EngineResult(outputs=[EngineOutput(out, "application/zip")],
                            data={"files": names}, pages=len(inputs))
