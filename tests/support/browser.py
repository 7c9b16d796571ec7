"""Headless Chromium driven over its DevTools protocol: navigate, evaluate JavaScript, take screenshots.

The browser is Debian's `chromium` (`make browser` installs it); the protocol goes over one WebSocket
(websocket-client, pinned). One page, one browser process, started and ended by the caller.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import websocket

CHROMIUM = "chromium"


class BrowserError(RuntimeError):
    """The browser did not start, or a DevTools command failed."""


class Browser:
    def __init__(self, *, width: int = 1500, height: int = 1800, start_timeout: float = 60.0) -> None:
        executable = shutil.which(CHROMIUM)
        if executable is None:
            raise BrowserError("chromium is not installed: run `make browser` (Debian's chromium package)")
        self._profile = tempfile.TemporaryDirectory(prefix="console-browser-", ignore_cleanup_errors=True)
        self._process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",  # as root in a container there is no user namespace to sandbox in
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                f"--window-size={width},{height}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile.name}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        try:
            self._socket = websocket.create_connection(
                self._page_socket(start_timeout), timeout=start_timeout
            )
        except BaseException:
            self.close()
            raise
        self.command("Page.enable")
        self.command("Runtime.enable")

    def _page_socket(self, timeout: float) -> str:
        """The WebSocket URL of the browser's page, once Chromium has written its DevTools port."""
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrowserError(f"chromium exited with {self._process.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.2)
        raise BrowserError(f"chromium did not open its DevTools port within {timeout:.0f} s")

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events in between are skipped)."""
        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") != number:
                continue
            if "error" in message:
                raise BrowserError(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    def navigate(self, url: str, timeout: float = 60.0) -> None:
        """Open ``url`` and return once its document has loaded (a busy machine may take seconds)."""
        self.command("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                href, ready = self.evaluate("[location.href, document.readyState]")
            except BrowserError:  # between two documents
                href, ready = "", ""
            if href.split("#")[0] == url.split("#", maxsplit=1)[0] and ready == "complete":
                return
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not load within {timeout:.0f} s (at {href!r}, {ready!r})")
            time.sleep(0.2)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values only)."""
        result = self.command(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            thrown = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression}: {thrown}")
        return result.get("result", {}).get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page, however long."""
        data = self.command("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        socket = getattr(self, "_socket", None)
        if socket is not None:
            socket.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
