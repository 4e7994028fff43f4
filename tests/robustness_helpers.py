"""Real parts for the robustness tests: a paced live video source, the agent as a process whose log
lines can be waited on, an MQTT subscriber, and a tmpfs that can be filled.

Nothing here assumes how fast a machine is: the source plays a real clip at a fixed pace for as
long as a test needs (the agent never reaches an end of input it did not ask for), and tests wait
for log lines and messages, with generous timeouts that only catch hangs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.devtools.mosquitto import MosquittoBroker

REPO_ROOT = Path(__file__).resolve().parent.parent
DEVICE = "robust"


class PacedSource:
    """A live camera stand-in: a real clip, looped, served as a YUV4MPEG2 stream on
    tcp://127.0.0.1:PORT at `fps` frames a second (the agent reads it as a live stream: it keeps
    only the newest frame, as from a camera). `accepted` is set once the agent has connected."""

    def __init__(self, clip: Path, fps: float = 15.0, stall_after: int | None = None) -> None:
        self.clip = clip
        self.fps = fps
        # Frames sent on a connection before it goes silent, connection kept open (a stalled camera).
        self.stall_after = stall_after
        self.stalled = threading.Event()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(4)
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        self.accepted = threading.Event()
        self.frames_sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="paced-source", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.set()
            with conn:
                self._stream(conn)

    def _stream(self, conn: socket.socket) -> None:
        capture = cv2.VideoCapture(str(self.clip))
        try:
            ok, image = capture.read()
            if not ok:
                return
            height, width = image.shape[:2]
            conn.sendall(f"YUV4MPEG2 W{width} H{height} F{round(self.fps)}:1 Ip A1:1 C420jpeg\n".encode())
            next_at = time.monotonic()
            while not self._stop.is_set():
                if self.stall_after is not None and self.frames_sent >= self.stall_after:
                    self.stalled.set()
                    self._stop.wait()
                    return
                frame = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes()
                conn.sendall(b"FRAME\n" + frame)
                self.frames_sent += 1
                next_at += 1.0 / self.fps
                self._stop.wait(max(0.0, next_at - time.monotonic()))
                ok, image = capture.read()
                if not ok:  # loop the clip
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, image = capture.read()
                    if not ok:
                        return
        except OSError:
            return  # the agent went away
        finally:
            capture.release()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.close()
        self._thread.join(timeout=10)


class AgentProcess:
    """`facetrack-agent run` with JSON logs; every stderr line is kept and can be waited on."""

    def __init__(self, args: list[str], state_dir: Path, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ)
        full_env.update(
            FACETRACK_MQTT__RECONNECT_MIN_S="0.2",
            FACETRACK_MQTT__RECONNECT_MAX_S="0.5",
            FACETRACK_STATUS__INTERVAL_S="1",
        )
        full_env.update(env or {})
        command = [
            sys.executable, "-m", "agent", "run",
            "--device-id", DEVICE,
            "--state-dir", str(state_dir),
            "--log-format", "json",
            *args,
        ]  # fmt: skip
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.records: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        self.records.append(record)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_log(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 120) -> dict[str, Any]:
        """The first log record matching `predicate`; fails if the agent exits or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for record in self.records[seen:]:
                    if predicate(record):
                        return record
                seen = len(self.records)
                if not self._reader.is_alive():
                    raise AssertionError(f"agent exited first; last lines: {self.tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no such log record in {timeout}s; last lines: {self.tail()}")
                self._cond.wait(timeout=min(remaining, 1.0))

    def wait_event(self, name: str, timeout: float = 120) -> dict[str, Any]:
        return self.wait_log(lambda r: r.get("event") == name, timeout)

    def logged(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [r for r in self.records if r.get("event") == name]

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def finish(self, timeout: float = 120) -> int:
        """The exit code; kills the agent and fails the test if it has not exited within `timeout`."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"agent hung: still running {timeout}s later; last lines: {self.tail()}"
            ) from None
        self._reader.join(timeout=10)
        return code

    def tail(self, count: int = 15) -> str:
        return "\n".join(line[:400] for line in self.lines[-count:])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Subscriber:
    """Everything the broker delivers on `facetrack/<DEVICE>/#`, in arrival order."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"robust-sub-{os.getpid()}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not self._subscribed.wait(30):
            raise AssertionError("subscriber could not subscribe")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(f"facetrack/{DEVICE}/#", qos=1)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload)))
            self._cond.notify_all()

    def events(self) -> list[dict[str, Any]]:
        with self._cond:
            return [json.loads(p) for t, p in self.messages if t.endswith("/events")]

    def last(self, leaf: str) -> bytes | None:
        with self._cond:
            found = [p for t, p in self.messages if t.endswith("/" + leaf)]
        return found[-1] if found else None

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._events_locked()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"condition not met in {timeout}s; events: {self._events_locked()[-5:]}"
                    )
                self._cond.wait(timeout=min(remaining, 1.0))

    def wait_topic(self, leaf: str, predicate: Callable[[bytes], bool], timeout: float = 120) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for topic, payload in self.messages:
                    if topic.endswith("/" + leaf) and predicate(payload):
                        return payload
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching message on {leaf} in {timeout}s")
                self._cond.wait(timeout=min(remaining, 1.0))

    def _events_locked(self) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p in self.messages if t.endswith("/events")]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def assert_no_duplicate_seq(events: list[dict[str, Any]]) -> None:
    """A seq may arrive twice (at least once) but always with the same content."""
    by_seq: dict[int, dict[str, Any]] = {}
    for event in events:
        first = by_seq.setdefault(event["seq"], event)
        assert first == event, f"seq {event['seq']} was sent with two contents: {first} / {event}"


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    """A real tmpfs mounted at `path` (needs root); callers skip when it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise PermissionError(result.stderr.strip() or "mount failed")
    try:
        yield path
    finally:
        # Lazy: a file a failed test left open must not leave the mount behind.
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def can_mount_tmpfs(scratch: Path) -> str | None:
    """None when a tmpfs can be mounted here, else why not (the skip reason)."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    try:
        with small_tmpfs(scratch / "probe", "64k"):
            return None
    except (PermissionError, FileNotFoundError) as exc:
        return f"cannot mount a tmpfs: {exc}"


def fill_disk(directory: Path) -> Path:
    """Write a file until the filesystem has no byte left; returns it (delete it to free space)."""
    filler = directory / "filler"
    block = b"\0" * 4096
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError:
            pass
        try:
            while True:
                handle.write(b"\0")
        except OSError:
            pass
    return filler
