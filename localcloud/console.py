"""The operator console's web server: static files from the repository, and the status API behind /api/.

The page (``console/`` in the repository: HTML, plain ES modules and CSS, no build step) calls the status
API as ``/api/<route>``; this server forwards each such request to the API it was given (the local API of
`make local` and `make demo`, or a deployed one's ``StatusApiUrl``) and returns the answer as it came.
The page and the API therefore share one origin, and the API needs no CORS: the deployed API sends no
``Access-Control-Allow-*`` header, so a page served from anywhere else could not read it.

The caller's ``Authorization`` header is passed through and never stored or logged here; the key lives in
the page (typed in, or in the URL fragment, which browsers never send to a server). Only loopback is
served, only GET and HEAD are served for files, and only files under the mounted folders.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

LOGGER = logging.getLogger("localcloud.console")
API_PREFIX = "/api/"
_FORWARDED_REQUEST_HEADERS = ("Authorization", "Content-Type", "Accept")
_FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Retry-After")
_MAX_BODY_BYTES = 1024 * 1024
_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".css": "text/css",
}


def _content_type(path: Path) -> str:
    return _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class ConsoleServer:
    """Serves ``mounts`` (URL prefix such as ``/console/`` -> folder) and forwards ``/api/...`` to ``api_url``
    on 127.0.0.1:<port> (0 picks a free port) until close(). ``/`` redirects to ``index``."""

    def __init__(
        self,
        mounts: Mapping[str, Path],
        api_url: str,
        *,
        port: int = 0,
        index: str = "/console/",
        timeout_seconds: float = 60.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._mounts = {prefix: folder.resolve() for prefix, folder in mounts.items()}
        self._index = index
        self._timeout = timeout_seconds
        self._session = requests.Session()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Referrer-Policy", "no-referrer")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self) -> None:
                try:
                    status, headers, body = server.handle(
                        self.command, self.path, dict(self.headers.items()), self._body()
                    )
                except Exception:
                    LOGGER.exception("console: %s %s failed", self.command, urlsplit(self.path).path)
                    status, headers, body = 502, {"Content-Type": "text/plain"}, b"console server error"
                self._reply(status, headers, body)

            def _body(self) -> bytes:
                length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY_BYTES)
                return self.rfile.read(length) if length else b""

            do_GET = do_HEAD = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return  # request lines would carry nothing useful; headers (keys) are never logged

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="console", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The page's URL, e.g. http://127.0.0.1:4568/console/."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._index}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._session.close()

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(raw_path)
        if split.path.startswith(API_PREFIX):
            return self._forward(method, split.path[len(API_PREFIX) - 1 :], split.query, headers, body)
        if method not in ("GET", "HEAD"):
            return 405, {"Content-Type": "text/plain", "Allow": "GET, HEAD"}, b"method not allowed"
        if split.path == "/":
            return 302, {"Location": self._index}, b""
        return self._file(unquote(split.path))

    def _file(self, path: str) -> tuple[int, dict[str, str], bytes]:
        for prefix, folder in self._mounts.items():
            if not path.startswith(prefix):
                continue
            relative = path[len(prefix) :] or "index.html"
            candidate = (folder / relative).resolve()
            if candidate.is_relative_to(folder) and candidate.is_file():
                return 200, {"Content-Type": _content_type(candidate)}, candidate.read_bytes()
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def _forward(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """The request as the API answers it (status, body, Content-Type and Retry-After)."""
        wanted = {name.lower(): name for name in _FORWARDED_REQUEST_HEADERS}
        forwarded = {wanted[name.lower()]: value for name, value in headers.items() if name.lower() in wanted}
        url = self.api_url + path + (f"?{query}" if query else "")
        try:
            response = self._session.request(
                method,
                url,
                headers=forwarded,
                data=body or None,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            message = f"the console could not reach the status API at {self.api_url}: {type(error).__name__}"
            return 502, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode()
        kept = {
            name: response.headers[name] for name in _FORWARDED_RESPONSE_HEADERS if name in response.headers
        }
        return response.status_code, kept, response.content
