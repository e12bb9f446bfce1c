"""Knowledge bases, through every method of the official Docutray client's `knowledge_bases`
(0.2.1 in the test virtualenv, 0.1.0 in a virtualenv of its own, see tests/clients.py), the
native `/v1/knowledge-bases` mirror, per-organization isolation, pagination and the search
ranking (full text plus fuzzy matching) on each database backend. Also 0.1.0 reading
document types, which it expects without the `{"data"}` envelope.
"""

from __future__ import annotations

import asyncio
import io
import textwrap
import uuid

import docutray
import httpx
import pytest
from clients import run_client
from server import DocmillServer

pytestmark = pytest.mark.backends("all")  # search is PostgreSQL full-text there, LIKE on SQLite

SCHEMA = {"type": "object", "required": ["title"],
          "properties": {"title": {"type": "string"}, "body": {"type": "string"},
                         "tags": {"type": "array", "items": {"type": "string"}}}}
ARTICLES = [
    {"title": "Configuring authentication", "body": "Single sign-on with SAML and OAuth tokens",
     "tags": ["security"]},
    {"title": "Invoice numbering", "body": "How invoice numbers are assigned per supplier",
     "tags": ["billing"]},
    {"title": "Resetting a password", "body": "Send the reset link from the login page",
     "tags": ["security", "accounts"]},
    {"title": "Exporting reports", "body": "Quarterly revenue reports as spreadsheets",
     "tags": ["reports"]},
]


def client(srv: DocmillServer, org: str = "acme") -> docutray.Client:
    return docutray.Client(api_key=srv.keys[org], base_url=srv.url, max_retries=0)


def native(srv: DocmillServer, org: str = "acme") -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=60, trust_env=False,
                        headers={"Authorization": f"Bearer {srv.keys[org]}"})


@pytest.fixture
def kb(server: DocmillServer):
    c = client(server)
    made = c.knowledge_bases.create(name=f"Help center {uuid.uuid4().hex[:6]}",
                                    description="Product help articles", schema=SCHEMA)
    docs = c.knowledge_bases.documents(made.id)
    ids = [docs.create(content=a, document_id=f"art-{i}", metadata={"n": i}).id
           for i, a in enumerate(ARTICLES)]
    yield made, ids
    try:
        c.knowledge_bases.delete(made.id)
    except docutray.NotFoundError:
        pass


def test_crud_and_pagination_of_bases(server):
    c = client(server)
    tag = uuid.uuid4().hex[:6]
    made = [c.knowledge_bases.create(name=f"Paging {tag} {i}", description=f"base {i}",
                                     schema=SCHEMA, indexing_preferences={"language": "en"})
            for i in range(5)]
    assert made[0].name == f"Paging {tag} 0" and made[0].schema_ == SCHEMA
    assert made[0].isActive is True and made[0].documentCount == 0
    with pytest.raises(docutray.ConflictError):
        c.knowledge_bases.create(name=f"Paging {tag} 0", description="again", schema=SCHEMA)
    with pytest.raises(docutray.BadRequestError):
        c.knowledge_bases.create(name=f"Bad {tag}", description="x",
                                 schema={"type": "object", "properties": 5})
    first = c.knowledge_bases.list(limit=2, search=f"paging {tag}")
    assert first.total == 5 and len(first.data) == 2 and first.has_next_page()
    names = [b.name for b in c.knowledge_bases.list(limit=2, search=tag).auto_paging_iter()]
    assert sorted(names) == sorted(b.name for b in made)
    updated = c.knowledge_bases.update(made[1].id, name=f"Renamed {tag}",
                                       description="new words", is_active=False)
    assert (updated.name, updated.description, updated.isActive) == \
        (f"Renamed {tag}", "new words", False)
    got = c.knowledge_bases.get(made[1].id)
    assert got.name == f"Renamed {tag}" and got.isActive is False
    inactive = c.knowledge_bases.list(search=tag, is_active=False).data
    assert [b.id for b in inactive] == [made[1].id]
    assert len(c.knowledge_bases.list(search=tag, is_active=True).data) == 4
    for base in made:
        c.knowledge_bases.delete(base.id)
    with pytest.raises(docutray.NotFoundError):
        c.knowledge_bases.get(made[0].id)
    with pytest.raises(docutray.NotFoundError):
        c.knowledge_bases.delete(made[0].id)


def test_documents_crud_and_pagination(server, kb):
    made, ids = kb
    c = client(server)
    docs = c.knowledge_bases.documents(made.id)
    extra = [docs.create(content={"title": f"Note {i}", "body": "filler"}).id for i in range(21)]
    page = docs.list(limit=10)
    assert page.total == 25 and len(page.data) == 10 and page.has_next_page()
    listed = [d.id for d in docs.list(limit=10).auto_paging_iter()]
    assert listed == ids + extra  # oldest first, every document once
    assert [d.id for d in docs.list(search="password").data] == [ids[2]]
    one = docs.get(ids[1])
    assert one.content == ARTICLES[1] and one.documentId == "art-1" and one.metadata == {"n": 1}
    changed = docs.update(ids[1], content={"title": "Credit notes", "body": "Refunds"},
                          metadata={"n": 10})
    assert changed.content["title"] == "Credit notes" and changed.metadata == {"n": 10}
    assert docs.get(ids[1]).content == {"title": "Credit notes", "body": "Refunds"}
    with pytest.raises(docutray.BadRequestError) as exc:  # content must match the schema
        docs.create(content={"body": "no title"})
    assert any("title" in m for m in exc.value.body["errors"])
    docs.delete(extra[0])
    with pytest.raises(docutray.NotFoundError):
        docs.get(extra[0])
    assert c.knowledge_bases.get(made.id).documentCount == 24


def test_search_ranks_full_text_and_fuzzy_matches(server, kb):
    made, ids = kb
    c = client(server)
    exact = c.knowledge_bases.search(made.id, query="invoice numbers")
    assert exact.query == "invoice numbers" and exact.resultsCount == len(exact.data) >= 1
    assert exact.data[0].document.id == ids[1] and exact.data[0].similarity > 0.8
    assert all(0 <= item.similarity <= 1 for item in exact.data)
    assert [i.similarity for i in exact.data] == sorted((i.similarity for i in exact.data),
                                                        reverse=True)
    typo = c.knowledge_bases.search(made.id, query="autentication", limit=2)
    assert typo.data and typo.data[0].document.id == ids[0] and len(typo.data) <= 2
    prefix = c.knowledge_bases.search(made.id, query="spreadsh")
    assert prefix.data[0].document.id == ids[3]
    both = c.knowledge_bases.search(made.id, query="security password reset")
    assert both.data[0].document.id == ids[2]  # matches every word
    assert {i.document.id for i in both.data} >= {ids[0], ids[2]}
    assert c.knowledge_bases.search(made.id, query="zeppelin aquarium").resultsCount == 0
    strict = c.knowledge_bases.search(made.id, query="invoice", similarity_threshold=0.99)
    assert all(i.similarity >= 0.99 for i in strict.data)
    bare = c.knowledge_bases.search(made.id, query="invoice", include_metadata=False)
    assert bare.data[0].document.metadata is None
    # a change is searchable at once, a deletion gone at once
    docs = c.knowledge_bases.documents(made.id)
    docs.update(ids[3], content={"title": "Exporting ledgers", "body": "Kangaroo format"})
    assert c.knowledge_bases.search(made.id, query="kangaroo").data[0].document.id == ids[3]
    docs.delete(ids[3])
    assert c.knowledge_bases.search(made.id, query="kangaroo").resultsCount == 0
    synced = c.knowledge_bases.sync(made.id, regenerate_embeddings=True)
    assert synced.status == "completed" and synced.documentsProcessed == 3
    assert c.knowledge_bases.search(made.id, query="invoice").data[0].document.id == ids[1]


def test_isolation_between_organizations(server, kb):
    made, ids = kb
    other = client(server, "globex")
    with pytest.raises(docutray.NotFoundError):
        other.knowledge_bases.get(made.id)
    with pytest.raises(docutray.NotFoundError):
        other.knowledge_bases.search(made.id, query="invoice")
    with pytest.raises(docutray.NotFoundError):
        other.knowledge_bases.documents(made.id).list()
    with pytest.raises(docutray.NotFoundError):
        other.knowledge_bases.documents(made.id).get(ids[0])
    with pytest.raises(docutray.NotFoundError):
        other.knowledge_bases.update(made.id, name="taken over")
    with pytest.raises(docutray.NotFoundError):
        other.knowledge_bases.documents(made.id).delete(ids[0])
    with pytest.raises(docutray.NotFoundError):
        other.knowledge_bases.sync(made.id)
    assert made.id not in {b.id for b in other.knowledge_bases.list(limit=100).data}
    # the same name is free in another organization, and its search sees only its own
    own = other.knowledge_bases.create(name=made.name, description="globex", schema=SCHEMA)
    other.knowledge_bases.documents(own.id).create(content={"title": "Globex invoice"})
    found = other.knowledge_bases.search(own.id, query="invoice")
    assert [i.document.content["title"] for i in found.data] == ["Globex invoice"]
    with native(server, "globex") as http:
        assert http.get(f"/v1/knowledge-bases/{made.id}").status_code == 404
    other.knowledge_bases.delete(own.id)
    assert client(server).knowledge_bases.get(made.id).documentCount == len(ids)


def test_async_client(server, kb):
    made, ids = kb

    tag = uuid.uuid4().hex[:6]

    async def run() -> tuple:
        async with docutray.AsyncClient(api_key=server.keys["acme"], base_url=server.url,
                                        max_retries=0) as c:
            page = await c.knowledge_bases.list(search=made.name)
            found = await c.knowledge_bases.search(made.id, query="password")
            doc = await c.knowledge_bases.documents(made.id).get(ids[2])
            # every other method, on a base of the async client's own
            own = await c.knowledge_bases.create(name=f"Async {tag}", description="first",
                                                 schema=SCHEMA)
            renamed = await c.knowledge_bases.update(own.id, name=f"Async renamed {tag}",
                                                     description="second")
            got = await c.knowledge_bases.get(own.id)
            docs = c.knowledge_bases.documents(own.id)
            made_doc = await docs.create(content=ARTICLES[0], document_id="a-0")
            await docs.update(made_doc.id, content={"title": "Kerberos realms"})
            listed = await docs.list()
            synced = await c.knowledge_bases.sync(own.id)
            hit = await c.knowledge_bases.search(own.id, query="kerberos")
            await docs.delete(made_doc.id)
            after = await docs.list()
            await c.knowledge_bases.delete(own.id)
            try:
                await c.knowledge_bases.get(own.id)
                gone = False
            except docutray.NotFoundError:
                gone = True
            return page, found, doc, renamed, got, listed, synced, hit, after, gone

    page, found, doc, renamed, got, listed, synced, hit, after, gone = asyncio.run(run())
    assert [b.id for b in page.data] == [made.id]
    assert found.data[0].document.id == ids[2] and doc.content == ARTICLES[2]
    assert renamed.name == got.name == f"Async renamed {tag}" and got.description == "second"
    assert [d.content for d in listed.data] == [{"title": "Kerberos realms"}]
    assert synced.status == "completed" and synced.documentsProcessed == 1
    assert [r.document.content["title"] for r in hit.data] == ["Kerberos realms"]
    assert after.data == [] and after.total == 0 and gone


def test_native_mirror_and_documents_from_an_extraction(server, kb):
    made, ids = kb
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(72, 760, "Invoice number: INV-2041")
    page.drawString(72, 740, "Total: 99.50")
    page.save()
    schema = {"type": "object", "properties": {"invoice_number": {"type": ["string", "null"]},
                                               "total": {"type": ["number", "null"]}}}
    with native(server) as http:
        listed = http.get("/v1/knowledge-bases", params={"search": made.name}).json()
        assert [b["id"] for b in listed["items"]] == [made.id]
        assert listed["items"][0]["document_count"] == len(ids)
        base = http.post("/v1/knowledge-bases", json={"name": f"Invoices {uuid.uuid4().hex[:6]}",
                                                       "schema": schema}).json()
        job = http.post("/v1/jobs", params={"wait": 60},
                        files={"file": ("inv.pdf", buffer.getvalue(), "application/pdf")},
                        data={"operation": "extract.fields",
                              "params": f'{{"schema": {__import__("json").dumps(schema)}}}'})
        assert job.status_code == 200 and job.json()["status"] == "SUCCESS", job.text
        added = http.post(f"/v1/knowledge-bases/{base['id']}/documents",
                          json={"job_id": job.json()["id"], "metadata": {"from": "scan"}})
        assert added.status_code == 201, added.text
        assert added.json()["content"]["invoice_number"] == "INV-2041"
        found = http.post(f"/v1/knowledge-bases/{base['id']}/search",
                          json={"query": "INV-2041"}).json()
        assert found["results"][0]["document"]["id"] == added.json()["id"]
        # the Docutray face sees the same base and document
        mirrored = client(server).knowledge_bases.documents(base["id"]).get(added.json()["id"])
        assert mirrored.content["total"] == 99.5
        doc_url = f"/v1/knowledge-bases/{base['id']}/documents/{added.json()['id']}"
        assert http.get(doc_url).json()["metadata"] == {"from": "scan"}
        changed = http.patch(doc_url, json={"content": {"invoice_number": "INV-2042",
                                                        "total": 12.0}})
        assert changed.status_code == 200, changed.text
        assert http.get(doc_url).json()["content"] == {"invoice_number": "INV-2042", "total": 12.0}
        renamed = http.patch(f"/v1/knowledge-bases/{base['id']}", json={"description": "scans"})
        assert renamed.status_code == 200 and renamed.json()["description"] == "scans"
        synced = http.post(f"/v1/knowledge-bases/{base['id']}/sync").json()
        assert synced["status"] == "completed" and synced["documents_processed"] == 1
        found = http.post(f"/v1/knowledge-bases/{base['id']}/search",
                          json={"query": "INV-2042"}).json()
        assert [r["document"]["id"] for r in found["results"]] == [added.json()["id"]]
        assert http.delete(doc_url).status_code == 204
        assert http.get(doc_url).status_code == 404
        bad = http.post(f"/v1/knowledge-bases/{base['id']}/documents", json={"job_id": "nope"})
        assert bad.status_code == 404 and bad.json()["error"]["code"] == "not_found"
        page2 = http.get(f"/v1/knowledge-bases/{made.id}/documents",
                         params={"limit": 2, "page": 2}).json()
        assert page2["total"] == len(ids) and [d["id"] for d in page2["items"]] == ids[2:4]
        assert http.delete(f"/v1/knowledge-bases/{base['id']}").status_code == 204
        assert http.get(f"/v1/knowledge-bases/{base['id']}").status_code == 404


# --- docutray 0.1.0, in its own virtualenv --------------------------------------------------

OLD = "docutray==0.1.0"


def old_client(server: DocmillServer, body: str, **env: str) -> dict:
    script = textwrap.dedent("""
        import json, os
        import docutray
        c = docutray.Client(api_key=os.environ["KEY"], base_url=os.environ["BASE"],
                            max_retries=0)
        """) + textwrap.dedent(body)
    result = run_client(OLD, script, {"KEY": server.keys["acme"], "BASE": server.url, **env})
    assert isinstance(result, dict)
    return result


def test_old_client_reads_document_types(server):
    tag = uuid.uuid4().hex[:6]
    schema = {"type": "object", "properties": {"total": {"type": ["number", "null"]}}}
    with native(server) as http:
        made = http.post("/v1/document-types", json={
            "code": f"acme_old_{tag}", "name": "Old client type", "description": "for 0.1.0",
            "schema": schema, "is_draft": False})
        assert made.status_code == 201, made.text
    result = old_client(server, """
        got = c.document_types.get(os.environ["ID"])
        listed = c.document_types.list(search=os.environ["CODE"])
        check = c.document_types.validate(os.environ["ID"], {"total": "many"})
        raw = c.document_types.with_raw_response.get(os.environ["ID"]).parse()
        print(json.dumps({"id": got.id, "code": got.codeType, "name": got.name,
                          "schema": got.schema_, "draft": got.isDraft, "raw": raw.codeType,
                          "listed": [t.codeType for t in listed.data],
                          "valid": check.is_valid()}))
        """, ID=made.json()["id"], CODE=f"acme_old_{tag}")
    assert result == {"id": made.json()["id"], "code": f"acme_old_{tag}",
                      "name": "Old client type", "schema": schema, "draft": False,
                      "raw": f"acme_old_{tag}",
                      "listed": [f"acme_old_{tag}"], "valid": False}


def test_old_client_knowledge_bases_every_method(server):
    result = old_client(server, """
        kbs = c.knowledge_bases
        out = {}
        made = kbs.create(name=os.environ["NAME"], description="old client",
                          schema={"type": "object", "properties": {"q": {"type": "string"}}})
        out["created"] = [made.name, made.isActive]
        out["listed"] = [b.id == made.id for b in kbs.list(search=os.environ["NAME"]).data]
        out["got"] = kbs.get(made.id).description
        out["updated"] = kbs.update(made.id, description="renamed").description
        docs = kbs.documents(made.id)
        first = docs.create(content={"q": "how do I rotate a pdf"}, document_id="faq-1")
        second = docs.create(content={"q": "merging two invoices"})
        out["docs"] = [d.id for d in docs.list().data] == [first.id, second.id]
        out["doc"] = docs.get(first.id).documentId
        out["doc_updated"] = docs.update(second.id, content={"q": "merging invoices"}).content
        found = kbs.search(made.id, query="rotaet pdf")
        out["search"] = [found.data[0].document.id == first.id, found.resultsCount]
        out["sync"] = kbs.sync(made.id).status
        docs.delete(first.id)
        out["after_delete"] = docs.list().total
        kbs.delete(made.id)
        try:
            kbs.get(made.id)
        except docutray.NotFoundError:
            out["gone"] = True
        print(json.dumps(out))
        """, NAME=f"Old FAQ {uuid.uuid4().hex[:6]}")
    assert result["created"][1] is True and result["listed"] == [True]
    assert result["got"] == "old client" and result["updated"] == "renamed"
    assert result["docs"] is True and result["doc"] == "faq-1"
    assert result["doc_updated"] == {"q": "merging invoices"}
    assert result["search"][0] is True and result["search"][1] >= 1
    assert result["sync"] == "completed" and result["after_delete"] == 1
    assert result["gone"] is True


def test_raw_response_methods(server, kb):
    made, ids = kb
    raw = client(server).knowledge_bases.with_raw_response
    listed = raw.list(search=made.name)
    assert listed.status_code == 200 and listed.headers["x-request-id"].startswith("req_")
    assert [b.id for b in listed.parse().data] == [made.id]
    got = raw.get(made.id)
    assert got.status_code == 200 and got.parse().documentCount == len(ids)
    found = raw.search(made.id, query="password", limit=1)
    assert found.status_code == 200 and found.parse().data[0].document.id == ids[2]
    synced = raw.sync(made.id)
    assert synced.status_code == 200 and synced.parse().documentsProcessed == len(ids)


def test_a_misspelt_query_reaches_old_documents_of_a_large_base(server):
    """A typo is matched through the base's vocabulary, not only among the newest documents
    (which alone would miss an old document once 200 newer ones exist)."""
    with native(server) as http:
        base = http.post("/v1/knowledge-bases", json={"name": f"Big {uuid.uuid4().hex[:6]}",
                                                       "schema": SCHEMA}).json()
        docs = f"/v1/knowledge-bases/{base['id']}/documents"
        old = http.post(docs, json={"content": ARTICLES[0]}).json()
        for i in range(205):
            made = http.post(docs, json={"content": {"title": f"Note {i}",
                                                     "body": f"filler words {i}"}})
            assert made.status_code == 201, made.text
        for query in ("autentication", "configuring authentcation", "SAML"):
            found = http.post(f"/v1/knowledge-bases/{base['id']}/search",
                              json={"query": query}).json()
            assert [r["document"]["id"] for r in found["results"]][:1] == [old["id"]], query
        # the literal LIKE filter: % is not a wildcard
        assert http.get("/v1/knowledge-bases", params={"search": "%"}).json()["total"] == 0
        assert http.delete(f"/v1/knowledge-bases/{base['id']}").status_code == 204
