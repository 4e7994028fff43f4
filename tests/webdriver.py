"""A minimal W3C WebDriver client (urllib only) for Debian's chromium + chromedriver, headless.

Just what the review page's test needs: open a page, find elements by CSS, type, click, read text,
take a screenshot. Each call waits on chromedriver's answer; page loads are waited on by WebDriver
itself (the default "normal" page-load strategy), never by time.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
# Hang guard, not a timing: "train and publish" trains a classifier inside one click's navigation on
# a shared, loaded machine.
HANG_S = 900.0


def available() -> bool:
    return shutil.which("chromedriver") is not None and shutil.which("chromium") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Browser:
    def __init__(self) -> None:
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen(
            ["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + HANG_S
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.05)
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1100,900",
        ]
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"args": args},
                    # A click waits for the navigation it starts up to this (default 300 s).
                    "timeouts": {"pageLoad": int(HANG_S * 1000), "script": 30_000, "implicit": 0},
                }
            }
        }
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=HANG_S) as response:
            return json.loads(response.read())["value"]

    def _s(self, path: str) -> str:
        return f"/session/{self.session}{path}"

    def open(self, url: str) -> None:
        self._call("POST", self._s("/url"), {"url": url})

    def find(self, css: str) -> str:
        return str(self._call("POST", self._s("/element"), {"using": "css selector", "value": css})[ELEMENT])

    def find_all(self, css: str) -> list[str]:
        found = self._call("POST", self._s("/elements"), {"using": "css selector", "value": css})
        return [str(e[ELEMENT]) for e in found]

    def type(self, element: str, text: str) -> None:
        self._call("POST", self._s(f"/element/{element}/value"), {"text": text})

    def click(self, element: str) -> None:
        self._call("POST", self._s(f"/element/{element}/click"))

    def submit(self, css: str) -> None:
        """Click a form's button and wait until the next page has loaded (a click does not always
        wait for the navigation it starts): the old document carries a mark the new one lacks."""
        self.script("window.__facetrackOld = true;")
        self.click(self.find(css))
        deadline = time.monotonic() + HANG_S
        while self.script("return window.__facetrackOld === true || document.readyState !== 'complete';"):
            assert time.monotonic() < deadline, f"no new page after submitting {css}"
            time.sleep(0.02)

    def text(self, element: str) -> str:
        return str(self._call("GET", self._s(f"/element/{element}/text")))

    def source(self) -> str:
        return str(self._call("GET", self._s("/source")))

    def script(self, code: str) -> Any:
        return self._call("POST", self._s("/execute/sync"), {"script": code, "args": []})

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._call("GET", self._s("/screenshot"))))

    def close(self) -> None:
        try:
            self._call("DELETE", self._s(""))
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=30)
