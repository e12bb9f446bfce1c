"""The native face (`/v1`): `routes_*.py` the endpoints per resource, `request.py` the
reading of requests, `render.py` the declared answer shapes, `errors.py` core errors as
`{"error": {...}}`, `webhook.py` the HTTP-free webhook body."""
