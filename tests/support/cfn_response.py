"""A loopback HTTP server standing in for the presigned S3 ResponseURL a CloudFormation custom resource
answers on: it records every PUT (method, path, headers, Content-Type and JSON body)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ResponseUrlServer:
    def __init__(self) -> None:
        self.responses: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.content_types: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.command, self.path, dict(self.headers)))
                outer.content_types.append(self.headers.get("Content-Type"))
                outer.responses.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url_for(self, path_and_query: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path_and_query}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
