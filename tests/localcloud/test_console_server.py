"""localcloud.console: the operator console's files, and the status API forwarded on the same origin."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from localcloud.console import ConsoleServer


class _Upstream(BaseHTTPRequestHandler):
    """A stand-in status API: answers with what it received, 429 with Retry-After on /busy."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = {
            "method": self.command,
            "path": self.path,
            "authorization": self.headers.get("Authorization"),
            "cookie": self.headers.get("Cookie"),
            "body": self.rfile.read(length).decode() if length else None,
        }
        status = 429 if self.path.endswith("/busy") else 200
        body = json.dumps(received).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "tracking=1")
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleServer]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text("<p>console</p>")
    (tmp_path / "page" / "app.js").write_text("export {};")
    (tmp_path / "secret.txt").write_text("not served")
    server = ConsoleServer(
        {"/console/": tmp_path / "page"}, f"http://127.0.0.1:{upstream.server_address[1]}/v1"
    )
    yield server
    server.close()
    upstream.shutdown()
    upstream.server_close()


def _base(console: ConsoleServer) -> str:
    return console.url.removesuffix("/console/")


def test_it_serves_the_files_under_its_mounts_only(console: ConsoleServer) -> None:
    page = requests.get(console.url, timeout=10)
    assert page.status_code == 200
    assert page.text == "<p>console</p>"
    script = requests.get(console.url + "app.js", timeout=10)
    assert script.headers["Content-Type"] == "text/javascript"
    root = requests.get(_base(console) + "/", timeout=10, allow_redirects=False)
    assert (root.status_code, root.headers["Location"]) == (302, "/console/")
    for outside in (
        "/console/../secret.txt",
        "/console/%2e%2e/secret.txt",
        "/secret.txt",
        "/console/nothing.js",
    ):
        response = requests.Session().send(
            requests.Request("GET", _base(console) + outside).prepare(), timeout=10, allow_redirects=False
        )
        assert response.status_code == 404, outside
    assert requests.post(console.url + "app.js", timeout=10).status_code == 405


def test_api_requests_are_forwarded_with_the_key_and_answered_as_the_api_answered(
    console: ConsoleServer,
) -> None:
    headers = {"Authorization": "Bearer operator-key", "Cookie": "session=1"}
    forwarded = requests.get(_base(console) + "/api/tiers?limit=5", headers=headers, timeout=10)
    assert forwarded.status_code == 200
    assert forwarded.json() == {
        "method": "GET",
        "path": "/v1/tiers?limit=5",
        "authorization": "Bearer operator-key",
        "cookie": None,  # only Authorization, Content-Type and Accept go on
        "body": None,
    }
    assert "Set-Cookie" not in forwarded.headers
    posted = requests.post(_base(console) + "/api/jobs/j/cancel", json={"a": 1}, headers=headers, timeout=10)
    assert posted.json()["method"] == "POST"
    assert posted.json()["body"] == '{"a": 1}'
    busy = requests.get(_base(console) + "/api/busy", headers=headers, timeout=10)
    assert (busy.status_code, busy.headers["Retry-After"]) == (429, "1")


def test_an_unreachable_api_is_a_502_that_says_so(tmp_path: Path) -> None:
    server = ConsoleServer({"/console/": tmp_path}, "http://127.0.0.1:9/v1", timeout_seconds=5)
    try:
        response = requests.get(server.url.removesuffix("/console/") + "/api/tiers", timeout=10)
    finally:
        server.close()
    assert response.status_code == 502
    assert "could not reach the status API at http://127.0.0.1:9/v1" in response.json()["message"]
