"""The expert.ai Extract face: the vendor's token endpoint and async layout API over the core.

`routes` holds the HTTP endpoints, `request` the caller's bearer token and the parsing of the
token and layout bodies, `render` the vendor's result (`header`, `layout`, packed `words`)
and a task's status, `errors` the `vnd.error` answers, `tokens` the bearer tokens and
refused-task ids (PyJWT). `render` and `tokens` import no HTTP framework. There is no
`webhook.py`: expert.ai sends no webhooks (a client polls `/beta/status/{taskId}`).
"""
