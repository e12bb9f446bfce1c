"""The native admin API the console is built on: `/v1/keys`, `/v1/webhook-deliveries` (with
redeliver), `/v1/queue`, plus `/v1/jobs/{id}/transitions`, `/v1/jobs/{id}/inputs/{name}` and
the `created_after/before` filters of `GET /v1/jobs`. Admin keys only (403 for a user key),
always the caller's own organization (another organization's key or delivery is a 404)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from local_http import WebhookReceiver

PDF_NAME = "pdf/minimal-document.pdf"
pytestmark = pytest.mark.backends("all")  # keys, time filters and deliveries are queries


def admin_client(server, org: str) -> httpx.Client:
    key = server.cli("keys", "create", "--org", org, "--admin").stdout.strip().splitlines()[-1]
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                        timeout=60, trust_env=False)


def test_admin_calls_need_an_admin_key(globex):
    for method, path in (("GET", "/v1/keys"), ("POST", "/v1/keys"), ("DELETE", "/v1/keys/x"),
                         ("GET", "/v1/webhook-deliveries"), ("GET", "/v1/queue"),
                         ("POST", "/v1/webhook-deliveries/1/redeliver")):
        answer = globex.request(method, path, json={"name": "x"} if method == "POST" else None)
        assert answer.status_code == 403, (method, path)
        assert answer.json()["error"]["code"] == "forbidden"


def test_keys_create_once_list_revoke_org_scoped(server, acme):
    created = acme.post("/v1/keys", json={"name": "robot", "role": "user"})
    assert created.status_code == 201
    body = created.json()
    key, key_id = body["key"], body["id"]
    assert key.startswith(f"dm_{body['prefix']}_") and body["role"] == "user"
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                      trust_env=False) as robot:
        assert robot.get("/v1/organization").json()["slug"] == "acme"
        listed = {k["id"]: k for k in acme.get("/v1/keys").json()["keys"]}
        assert listed[key_id]["name"] == "robot" and not listed[key_id]["revoked"]
        assert all("key" not in k and "key_hash" not in k for k in listed.values())
        with admin_client(server, "initech") as other:  # another organization's admin
            assert key_id not in {k["id"] for k in other.get("/v1/keys").json()["keys"]}
            assert other.delete(f"/v1/keys/{key_id}").status_code == 404
            assert other.delete(f"/v1/keys/{body['prefix']}").status_code == 404
        assert robot.get("/v1/organization").status_code == 200  # still works
        assert acme.delete(f"/v1/keys/{key_id}").status_code == 204
        assert robot.get("/v1/organization").status_code == 401
        assert acme.delete(f"/v1/keys/{key_id}").status_code == 409  # already revoked
    listed = {k["id"]: k for k in acme.get("/v1/keys").json()["keys"]}
    assert listed[key_id]["revoked"]


def test_key_creation_refuses_bad_input(acme):
    for body in ({"role": "root"}, {"name": 7}, {"name": "x" * 201}, ["not", "an object"]):
        answer = acme.post("/v1/keys", json=body)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["code"] == "invalid_input"
    assert acme.post("/v1/keys", content=b"{", headers={"Content-Type": "application/json"}
                     ).status_code == 400


def test_transitions_and_time_filters(acme, globex, data):
    job = acme.post("/v1/jobs", params={"wait": 60}, data={"operation": "pdf.to-text"},
                    files={"file": ("a.pdf", (data / PDF_NAME).read_bytes())}).json()
    assert job["status"] == "SUCCESS"
    log = acme.get(f"/v1/jobs/{job['id']}/transitions").json()["transitions"]
    assert [t["status"] for t in log] == ["ENQUEUED", "PROCESSING", "SUCCESS"]
    assert log[1]["attempt"] == 1 and log[1]["owner"]
    assert globex.get(f"/v1/jobs/{job['id']}/transitions").status_code == 404
    received = acme.get(f"/v1/jobs/{job['id']}/inputs/a.pdf")  # the input, as received
    assert received.status_code == 200 and received.content == (data / PDF_NAME).read_bytes()
    assert globex.get(f"/v1/jobs/{job['id']}/inputs/a.pdf").status_code == 404
    assert acme.get(f"/v1/jobs/{job['id']}/inputs/other.pdf").status_code == 404
    created = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00"))

    def ids(**query: str) -> set[str]:
        return {j["id"] for j in acme.get("/v1/jobs", params={**query, "limit": 500}
                                          ).json()["jobs"]}

    before, after = created - timedelta(seconds=1), created + timedelta(seconds=1)
    assert job["id"] in ids(created_after=before.isoformat(), created_before=after.isoformat())
    assert job["id"] not in ids(created_after=after.isoformat())
    assert job["id"] not in ids(created_before=before.isoformat())
    naive = before.astimezone(UTC).replace(tzinfo=None).isoformat()
    assert job["id"] in ids(created_after=naive)  # no zone means UTC
    assert acme.get("/v1/jobs", params={"created_after": "yesterday"}).status_code == 400


def test_queue_status(acme):
    body = acme.get("/v1/queue").json()
    assert set(body) == {"server", "organization", "workers", "retention"}
    assert body["server"]["enqueued"] >= 0 and body["server"]["processing"] >= 0
    assert body["workers"]["dispatcher"] in ("local", "celery")
    assert body["retention"]["retention_s"] > 0


def test_webhook_deliveries_and_redeliver(make_server, data):
    srv = make_server(DOCMILL_SSRF_ALLOW_HOSTS='["127.0.0.2"]', DOCMILL_WEBHOOK_GIVE_UP_S="1")
    srv.start()
    receiver = WebhookReceiver(status=503)
    url = receiver.url
    try:
        with srv.client("acme") as acme, admin_client(srv, "initech") as other:
            job = acme.post("/v1/jobs", params={"wait": 60},
                            data={"operation": "pdf.to-text", "webhook_url": url},
                            files={"file": ("a.pdf", (data / PDF_NAME).read_bytes())}).json()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rows = acme.get("/v1/webhook-deliveries", params={"job_id": job["id"]}
                                ).json()["deliveries"]
                if rows and rows[0]["state"] == "failed":
                    break
                time.sleep(0.2)
            delivery = rows[0]
            assert delivery["state"] == "failed" and delivery["last_status"] == 503
            assert delivery["attempts"] == len(receiver.bodies) >= 1
            assert acme.get("/v1/webhook-deliveries", params={"state": "failed"}
                            ).json()["deliveries"][0]["id"] == delivery["id"]
            assert acme.get("/v1/webhook-deliveries", params={"state": "odd"}
                            ).status_code == 400
            path = f"/v1/webhook-deliveries/{delivery['id']}"
            assert other.get(path).status_code == 404  # another organization's
            assert other.post(f"{path}/redeliver").status_code == 404
            assert other.get("/v1/webhook-deliveries").json()["deliveries"] == []
            receiver.status = 200
            again = acme.post(f"{path}/redeliver")
            assert again.status_code == 200
            assert again.json()["state"] == "delivered"
            assert again.json()["attempts"] == delivery["attempts"] + 1 == len(receiver.bodies)
            assert acme.get(path).json()["delivered_at"]
            assert acme.get("/v1/webhook-deliveries/999999").status_code == 404
    finally:
        receiver.close()
