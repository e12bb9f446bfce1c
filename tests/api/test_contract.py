"""What the contract fuzz step relies on, checked directly: a method a path does not have is a
405 in that face's error shape with `Allow` listing exactly the methods the OpenAPI document
gives the path, and the document lists them (docs/api-contract.md)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.fast

CASES = [  # method, path, the document's path, face
    ("OPTIONS", "/v1/jobs/nope", "/v1/jobs/{job_id}", "native"),
    ("PUT", "/v1/operations", "/v1/operations", "native"),
    ("PUT", "/upload", "/upload", "convertapi"),
    ("OPTIONS", "/job/nope", "/job/{job_id}", "convertapi"),
    ("PUT", "/api/convert", "/api/convert", "docutray"),
    ("OPTIONS", "/api/document-types/nope", "/api/document-types/{type_id}", "docutray"),
    ("GET", "/docs", "/docs", "docraptor"),
    ("DELETE", "/status/nope", "/status/{status_id}", "docraptor"),
    ("GET", "/oauth2/token", "/oauth2/token", "expertai"),
    ("POST", "/beta/status/nope", "/beta/status/{task_id}", "expertai"),
]


def face_error(face: str, response: httpx.Response) -> str:
    """The message of the face's error body (an AssertionError if it is not that shape)."""
    if face == "docraptor":
        assert response.headers["content-type"].startswith("application/xml")
        assert "<errors>" in response.text
        return response.text
    body = response.json()
    if face == "native":
        assert body["error"]["code"] == "method_not_allowed"
        return body["error"]["message"]
    if face == "convertapi":
        assert body["Code"] == 4050
        return body["Message"]
    if face == "docutray":
        assert body["error"] == "Method not allowed"
        return body["message"]
    assert body["message"] == "Method Not Allowed"  # expert.ai's vnd.error
    return body["_embedded"]["errors"][0]["message"]


@pytest.mark.parametrize("method,path,documented,face", CASES)
def test_an_undeclared_method_is_a_405_in_the_faces_shape(server, method, path, documented, face):
    with server.anonymous() as http:
        schema = http.get("/openapi.json").json()
        declared = sorted(m.upper() for m in schema["paths"][documented])
        response = http.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == ", ".join(declared)
    assert method in face_error(face, response)


def test_an_unrouted_path_under_a_face_is_its_404(acme):
    response = acme.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
