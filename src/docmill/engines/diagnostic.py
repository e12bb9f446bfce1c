"""Diagnostic operations for operators and fault-injection tests, off unless
`DOCMILL_ENABLE_DIAGNOSTICS=true`: `diag.sleep` works for a given time reporting progress
(a stand-in for a slow or hung engine) and can crash its worker process on purpose."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from docmill.engines.base import (
    Engine,
    EngineInput,
    EngineOutput,
    EngineResult,
    Operation,
    Params,
    Progress,
)


class SleepParams(Params):
    seconds: float = Field(1.0, ge=0, le=3600)
    steps: int = Field(10, ge=1, le=10_000)
    crash: bool = Field(False, description="SIGKILL the worker process halfway through.")


class DiagnosticEngine(Engine):
    name = "diag"
    operations = (
        Operation("diag.sleep", "Work for `seconds`, reporting progress; echoes the input.",
                  SleepParams, frozenset({"*/*"}), ("bin",), engine="diag"),
    )

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        assert isinstance(params, SleepParams)
        for step in range(params.steps):
            if params.crash and step >= params.steps // 2:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(params.seconds / params.steps)
            progress(100 * (step + 1) / params.steps, f"step {step + 1} of {params.steps}")
        out = workdir / f"echo-{inputs[0].name}"
        out.write_bytes(inputs[0].path.read_bytes())
        return EngineResult(outputs=[EngineOutput(out, inputs[0].content_type)],
                            data={"pid": os.getpid(), "slept": params.seconds})
