"""The DocRaptor face: DocRaptor's wire protocol over the Docmill core.

`routes` holds the HTTP endpoints, `request` the reading and validation of the vendor's
document requests and their translation into a core submission, `webhook` the ids, URLs and
`callback_url` body shared with the worker that finishes a job. This module stays empty on
purpose: a worker process imports `webhook` without FastAPI.
"""
