"""The expert.ai Extract face: the vendor's token endpoint and async layout API over the core.

`routes` holds the HTTP endpoints, `tokens` the bearer tokens and refused-task ids (PyJWT),
`result` the rendering of the engine's native document JSON into the vendor's result
(`header`, `layout`, packed `words`). `tokens` and `result` import no HTTP framework.
"""
