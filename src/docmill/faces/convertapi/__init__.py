"""The ConvertAPI face: ConvertAPI's wire protocol over the Docmill core.

`routes` holds the HTTP endpoints, `converters` the `{from}/to/{to}` table generated from the
engine registry, `request` the reading of the vendor's request encodings,
`render` the job as the vendor's JSON, `errors` the one
mapping of core errors to the vendor's codes, `webhook` the vendor's webhook call. This
module stays empty on purpose: a worker process imports `webhook` without FastAPI.
"""
