"""Tenant isolation: one organization never sees another's jobs or files (404, not 403)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.backends("all")  # each backend scopes its queries by org


def test_other_org_cannot_see_download_or_delete(acme, globex, data):
    path = data / "pdf" / "minimal-document.pdf"
    with open(path, "rb") as handle:
        job = acme.post("/v1/jobs", params={"wait": 30},
                        data={"operation": "pdf.to-text", "params": json.dumps({})},
                        files={"file": (path.name, handle)}).json()
    assert job["status"] == "SUCCESS"
    name = job["files"][0]["name"]
    for response in (globex.get(f"/v1/jobs/{job['id']}"),
                     globex.get(f"/v1/jobs/{job['id']}/result"),
                     globex.get(f"/v1/jobs/{job['id']}/files/{name}"),
                     globex.get(f"/v1/jobs/{job['id']}/events"),
                     globex.delete(f"/v1/jobs/{job['id']}")):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    assert job["id"] not in [j["id"] for j in globex.get("/v1/jobs").json()["jobs"]]
    # still there for its owner, untouched by the attempted delete
    assert acme.get(f"/v1/jobs/{job['id']}/files/{name}").status_code == 200


def test_revoked_and_bogus_keys_are_refused(server, data):
    key = server.create_key("initech")
    import httpx

    with httpx.Client(base_url=server.url, trust_env=False) as client:
        assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        prefix = key.split("_")[1]
        server.cli("keys", "revoke", prefix)
        import time

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            response = client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"})
            if response.status_code == 401:
                break
            time.sleep(0.5)
        assert response.status_code == 401
        wrong = {"Authorization": f"Bearer {key[:-2]}xx"}
        assert client.get("/v1/jobs", headers=wrong).status_code == 401
        assert client.get("/v1/jobs").status_code == 401


def test_keys_are_stored_hashed(server):
    key = server.create_key("hashcheck")
    from sqlalchemy import create_engine, text

    engine = create_engine(server.database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT prefix, key_hash FROM api_keys")).all()
    engine.dispose()
    assert all(key not in (prefix, key_hash) for prefix, key_hash in stored)
    import hashlib

    assert hashlib.sha256(key.encode()).hexdigest() in [h for _, h in stored]
