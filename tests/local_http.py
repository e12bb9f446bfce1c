"""A recording HTTP server on 127.0.0.1 for the SSRF tests, and the hostile HTML they send:
the tests assert the server received nothing the guard should have refused."""

from __future__ import annotations

import http.server
import threading


class Recorder(http.server.ThreadingHTTPServer):
    """A local HTTP server that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                recorder.requests.append(self.path)
                status, headers, body = recorder.routes.get(
                    self.path, (404, {"Content-Type": "text/plain"}, b"missing"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


FILE_ATTACKS = """<!DOCTYPE html><html><head>
<link rel="stylesheet" href="file:///etc/passwd">
<link rel="attachment" href="file:///etc/passwd">
<link rel="stylesheet" href="{base}/sheet.css">
<style>
@import url("file:///etc/hostname");
@import url("{base}/imported.css");
body {{ background: url("http://169.254.169.254/latest/meta-data/") }}
h1 {{ background-image: url(file:///etc/passwd) }}
@font-face {{ font-family: x; src: url(file:///usr/share/fonts/truetype/dejavu/DejaVuSans.ttf) }}
</style></head>
<body><h1>Rendered without them</h1>
<img src="file:///etc/passwd"><img src="/etc/passwd"><img src="../../etc/passwd">
<iframe src="file:///etc/passwd"></iframe>
<object data="file:///etc/passwd"></object><embed src="file:///etc/shadow">
<img src="{base}/pixel.png"><img src="http://169.254.169.254/latest/meta-data/iam">
<img src="http://[::1]:{port}/v6.png"><img src="http://localhost:{port}/name.png">
<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==">
<p>end of document</p>
</body></html>"""  # noqa: E501 - the data: URL is one token


class WebhookReceiver(http.server.ThreadingHTTPServer):
    """Records the JSON bodies POSTed to it and answers each with `status` (settable), on
    `host` (127.0.0.2 for servers that allow only that address through the SSRF guard)."""

    def __init__(self, host: str = "127.0.0.2", status: int = 500) -> None:
        import json

        self.status = status
        self.bodies: list[object] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(json.loads(self.rfile.read(length) or b"null"))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__((host, 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}/hook"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
