"""The review page's server: stdlib HTTP on 127.0.0.1, one page, five actions.

Guards: the Host header must name this server (a DNS-rebinding page cannot talk to it); every
POST carries the page's CSRF token (made per server start, compared in constant time); only files
of the inbox that `cluster` listed are served; names are checked as `name` checks them. Actions
call the same functions as the commands (trainer.naming, and `train`/`publish` parsed and run as the
CLI runs them: trainer/review/train_publish.py).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from trainer.group_file import crop_name, read_groups, write_groups
from trainer.naming import NamingError, discard_groups, merge_groups, name_groups
from trainer.review.page import render

MAX_BODY = 64 * 1024
_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


@dataclass
class ReviewState:
    root: Path
    photos: Path
    # Runs `train` then `publish` (the CLI's code); returns a one-line outcome.
    train: Callable[[], str]
    token: str = ""
    message: str = ""
    best: int = 10

    def __post_init__(self) -> None:
        self.token = self.token or secrets.token_urlsafe(32)
        self.lock = threading.Lock()

    def listed(self) -> set[str]:
        document = read_groups(self.root)
        return {m for g in document["groups"] for m in g["members"]} | set(document.get("ungrouped", []))


def move_out(root: Path, group_id: str, face: str) -> None:
    """One face leaves its group for the ungrouped ones (a group of one is dissolved)."""
    document = read_groups(root)
    for group in document["groups"]:
        if group["id"] == group_id and face in group["members"]:
            group["members"] = [m for m in group["members"] if m != face]
            group["best"] = [m for m in group.get("best") or [] if m != face]
            group["size"] = len(group["members"])
            document["ungrouped"] = sorted({*document.get("ungrouped", []), face})
            if len(group["members"]) < 2:
                document["ungrouped"] = sorted({*document["ungrouped"], *group["members"]})
                document["groups"].remove(group)
            write_groups(root, document)
            return
    raise NamingError(f"no face {face!r} in group {group_id!r}")


class Handler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # quiet: the terminal shows the one address line

    def _host_ok(self) -> bool:
        if self.headers.get("Host", "") in self.server.allowed_hosts:
            return True
        self._send(HTTPStatus.FORBIDDEN, b"refused: the Host header does not name this server\n")
        return False

    def _send(self, status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        state = self.server.state
        path = urlsplit(self.path).path
        if path == "/":
            with state.lock:
                try:
                    document = read_groups(state.root)
                except (OSError, ValueError) as exc:
                    document, state.message = {"groups": [], "ungrouped": []}, f"no groups: {exc}"
                body = render(document, state.token, state.message).encode()
            self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")
            return
        if path.startswith("/face/"):
            self._face(unquote(path[len("/face/") :]))
            return
        self._send(HTTPStatus.NOT_FOUND, b"not found\n")

    def _face(self, relative: str) -> None:
        state = self.server.state
        root = state.root.resolve()
        target = (root / relative).resolve()
        if "#" in relative:
            # One face of a photo with several (`PATH#k`): its crop when `cluster` kept one, else the photo.
            crop = (root / crop_name(relative)).resolve()
            target = crop if crop.is_file() else (root / relative.rsplit("#", 1)[0]).resolve()
        # Only a file `cluster` listed, inside the inbox: no `..`, no absolute path, no symlink out.
        if relative not in state.listed() or not target.is_relative_to(root) or not target.is_file():
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")
            return
        content_type = _TYPES.get(target.suffix.lower())
        if content_type is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")
            return
        self._send(HTTPStatus.OK, target.read_bytes(), content_type)

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"too large\n")
            return
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        if not secrets.compare_digest(form.get("csrf", ""), state.token):
            self._send(HTTPStatus.FORBIDDEN, b"refused: missing or wrong CSRF token\n")
            return
        action = urlsplit(self.path).path.strip("/")
        with state.lock:
            try:
                state.message = self._act(action, form)
            except NamingError as exc:
                state.message = f"error: {exc}"
            except KeyError as exc:
                state.message = f"error: missing field {exc}"
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _act(self, action: str, form: dict[str, str]) -> str:
        state = self.server.state
        if action == "name":
            written = name_groups(state.root, [form["group"]], form["name"].strip(), state.photos, state.best)
            return f"{len(written)} faces of {form['group']} copied to {state.photos / form['name'].strip()}"
        if action == "merge":
            kept = merge_groups(state.root, form["into"].strip(), [form["group"]])
            return f"{form['group']} merged into {kept['id']} ({len(kept['members'])} faces)"
        if action == "discard":
            deleted = discard_groups(state.root, [form["group"]])
            return f"discarded {form['group']} ({deleted} face crops deleted)"
        if action == "move-out":
            move_out(state.root, form["group"], form["face"])
            return f"moved {form['face']} out of {form['group']}"
        if action == "train":
            return state.train()
        raise NamingError(f"unknown action {action!r}")


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, state: ReviewState) -> None:
        super().__init__((host, port), Handler)
        self.state = state
        bound = self.server_address[1]
        names = {host, "localhost", "127.0.0.1"} if host in ("127.0.0.1", "localhost") else {host}
        self.allowed_hosts = {f"{name}:{bound}" for name in names}

    @property
    def url(self) -> str:
        host, port = self.server_address[0], self.server_address[1]
        return f"http://{host!s}:{port}/"
