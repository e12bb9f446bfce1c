"""The web console at /console: server-rendered pages over the public native API."""
