"""The published OpenAPI documents (docs/openapi/<face>.json) are the server's current
contract: regenerated in a fresh interpreter (default settings) they come out identical, and
every route the app documents is published by one face."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_published_openapi_documents_are_current() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "openapi.py"), "--check"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_each_face_publishes_its_own_error_shape() -> None:
    """Spot checks that the files hold the faces' real contracts, not FastAPI's defaults."""
    docs = {p.stem: json.loads(p.read_text()) for p in (ROOT / "docs" / "openapi").glob("*.json")}
    assert set(docs) == {"native", "docutray", "convertapi", "docraptor", "expertai"}
    submit = docs["native"]["paths"]["/v1/jobs"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(submit["requestBody"]["content"])
    assert submit["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NativeError"}
    poll = docs["convertapi"]["paths"]["/job/{job_id}"]["get"]["responses"]
    assert poll["503"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ConvertApiError")
    assert "application/xml" in docs["docraptor"]["paths"]["/docs"]["post"]["responses"]["401"][
        "content"]
    for doc in docs.values():  # FastAPI's 422 is not what any face answers
        assert "HTTPValidationError" not in json.dumps(doc)
