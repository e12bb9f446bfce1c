"""A tiny app for tests/contract/test_fuzz_not_vacuous.py: `GET /items/{item_id}` answers 404
for ids over 100. With `LIAR_DECLARES_404` set it declares that answer; without, the status
is undeclared and the fuzz step must fail on it."""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse

app = FastAPI(title="liar", version="1")
NOT_FOUND = {404: {"description": "no such item"}} if os.environ.get("LIAR_DECLARES_404") else {}


@app.get("/items/{item_id}", responses={**NOT_FOUND})
async def item(item_id: int) -> JSONResponse:
    if item_id > 100:
        return JSONResponse({"error": "no such item"}, status_code=404)
    return JSONResponse({"id": item_id})
