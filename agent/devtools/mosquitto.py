"""Run a private mosquitto broker on a free loopback port (tests, benchmarks, the demo)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class MosquittoBroker:
    """A mosquitto process with its own config; `stop()` and `start()` simulate an outage.

    `extra_config` is appended to the generated config (listeners, TLS, ACLs for deploy tests);
    when it defines its own `listener`, pass `port` so readiness can be checked.
    """

    def __init__(
        self,
        port: int | None = None,
        extra_config: str = "",
        default_listener: bool = True,
        workdir: Path | None = None,
    ) -> None:
        binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if binary is None:
            raise BrokerError("mosquitto is not installed: run `make setup` (apt-get install mosquitto)")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="facetrack-mosquitto-"))
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        lines = ["persistence false", "log_dest stderr", "log_type error", "log_type warning"]
        if default_listener:
            lines += [f"listener {self.port} {self.host}", "allow_anonymous true"]
        self.config_path.write_text("\n".join(lines) + "\n" + extra_config + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        if self.running:
            return
        log = self.log_path.open("ab")
        self._process = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdout=log, stderr=log)
        log.close()
        if not wait_for_port(self.host, self.port, timeout_s):
            self.stop()
            raise BrokerError(
                f"mosquitto did not listen on {self.host}:{self.port}: {self.log_path.read_text()[-500:]}"
            )

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
