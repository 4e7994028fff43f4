"""Run a private ejabberd MQTT cluster of N nodes on free loopback ports (tests, bench.fleet).

Each node is its own Erlang VM (`erl ... -s ejabberd`) with a unique node name, a random cookie,
its own config, mnesia directory and log under one temporary folder, so nothing collides with an
ejabberd or RabbitMQ the machine runs itself (they share only epmd, which keys by node name).
Node 2.. join node 1 (`ejabberd_admin:join_cluster`, what `ejabberdctl join_cluster` runs); users
are registered once and replicated. `kill(i)` is kill -9 of a whole node (its process group).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from agent.devtools.ejabberd_config import Client, render, server_pem
from agent.devtools.mosquitto import BrokerError, free_port, wait_for_port

ERL = "/usr/bin/erl"
# Erlang's `+zdbbl` (KB): the output buffer to another node above which ejabberd 23.01 drops what
# it routes there (ejabberd_cluster_mnesia:send/2 sends with `nosuspend` and mod_mqtt ignores the
# refusal). The default 1 MB held only ~24 copies of a 43 KB model for the other node's devices;
# the maximum makes a drop need 2 GB queued to one peer. docs/deploy.md sets it for the service.
DIST_BUF_BUSY_LIMIT_KB = 2097151


def ejabberd_libs() -> Path | None:
    """The ERL_LIBS folder holding Debian's ejabberd-<version>/ (None: not installed)."""
    found = sorted(glob.glob("/usr/lib/*/ejabberd-*/ebin/ejabberd.beam"))
    return Path(found[-1]).parents[2] if found else None


def ejabberd_installed() -> bool:
    return ejabberd_libs() is not None and Path(ERL).is_file()


@dataclass
class EjabberdNode:
    name: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _erl_term(text: str) -> str:
    """A Python string as an Erlang binary literal."""
    return '<<"' + text.replace("\\", "\\\\").replace('"', '\\"') + '">>'


class EjabberdCluster:
    """`nodes` ejabberd nodes in one cluster, MQTT over TLS on loopback.

    `pki` is a folder made by facetrack-broker.sh (ca.crt, server.crt/key, clients/NAME/password):
    the same files the single mosquitto uses. `clients` (name -> role) get the shipped ACL as
    rendered by agent.devtools.ejabberd_config and are registered with their passwords.
    """

    def __init__(
        self,
        pki: Path,
        clients: Mapping[str, str],
        nodes: int = 2,
        *,
        tls_verify: bool = True,
    ) -> None:
        libs = ejabberd_libs()
        if libs is None or not Path(ERL).is_file():
            raise BrokerError("ejabberd is not installed: run `make setup` (apt-get install ejabberd)")
        self._libs = libs
        self.pki = pki
        self.clients = dict(clients)
        self.host = "127.0.0.1"
        self.workdir = Path(tempfile.mkdtemp(prefix="facetrack-ejabberd-"))
        self.workdir.chmod(0o755)
        self._cookie = secrets.token_hex(16)
        tag = secrets.token_hex(4)
        self.nodes = [
            EjabberdNode(f"facetrack-{tag}-{i}@127.0.0.1", free_port(), self.workdir / f"node{i}")
            for i in range(nodes)
        ]
        pem = self.workdir / "server.pem"
        pem.write_text(server_pem(pki))
        pem.chmod(0o600)
        roster = [Client(name, role) for name, role in sorted(self.clients.items())]
        for node in self.nodes:
            (node.workdir / "db").mkdir(parents=True)
            (node.workdir / "ejabberd.yml").write_text(
                render(
                    roster,
                    port=node.port,
                    certfile=pem,
                    cafile=pki / "ca.crt",
                    ip=self.host,
                    tls_verify=tls_verify,
                )
            )

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def broker_list(self) -> str:
        """The nodes as `--broker` takes them: 127.0.0.1:P1,127.0.0.1:P2."""
        return ",".join(f"{self.host}:{node.port}" for node in self.nodes)

    def start(self, timeout_s: float = 60.0) -> None:
        try:
            self._start(timeout_s)
        except BaseException:
            # A half-started cluster must not outlive its caller (no __exit__ runs when
            # __enter__ raises): kill every node started so far.
            self.close()
            raise

    def _start(self, timeout_s: float) -> None:
        for node in self.nodes:
            self._start_node(node)
        for node in self.nodes:
            if not wait_for_port(self.host, node.port, timeout_s):
                log = node.workdir / "out.log"
                tail = log.read_text()[-800:] if log.is_file() else ""
                raise BrokerError(f"ejabberd node {node.name} did not listen on port {node.port}: {tail}")
        first = self.nodes[0].name
        joins = "".join(
            f"ok = rpc:call('{node.name}', ejabberd_admin, join_cluster, [{_erl_term(first)}], 120000),"
            for node in self.nodes[1:]
        )
        self._eval(joins + "ok")
        self.register(self._passwords())
        # join_cluster restarts ejabberd on the joining node: wait for its listener again.
        for node in self.nodes:
            if not wait_for_port(self.host, node.port, timeout_s):
                raise BrokerError(f"ejabberd node {node.name} did not come back after joining the cluster")

    def _passwords(self) -> dict[str, str]:
        return {name: (self.pki / "clients" / name / "password").read_text().strip() for name in self.clients}

    def register(self, passwords: Mapping[str, str]) -> None:
        """Register users (replicated to every node) in one Erlang call."""
        if not passwords:
            return
        pairs = ",".join(f"{{{_erl_term(u)},{_erl_term(p)}}}" for u, p in sorted(passwords.items()))
        node = self.nodes[0].name
        self._eval(
            f"lists:foreach(fun({{U,P}}) -> case rpc:call('{node}', ejabberd_auth, try_register, "
            f'[U, <<"localhost">>, P]) of ok -> ok; {{error, exists}} -> ok end end, [{pairs}]), ok'
        )

    def kill(self, index: int) -> None:
        """kill -9 a node: its VM and helpers, no goodbye to clients or to the other nodes."""
        node = self.nodes[index]
        if node.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait()
        node.process = None

    def close(self) -> None:
        for index in range(len(self.nodes)):
            self.kill(index)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EjabberdCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _env(self, home: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"ERL_LIBS": str(self._libs), "HOME": str(home), "ERL_CRASH_DUMP_BYTES": "0"})
        return env

    def _base_args(self, name: str) -> list[str]:
        return [
            ERL,
            "-name",
            name,
            "-setcookie",
            self._cookie,
            "-noinput",
            "-kernel",
            "inet_dist_use_interface",
            "{127,0,0,1}",
        ]

    def _start_node(self, node: EjabberdNode) -> None:
        env = self._env(node.workdir)
        env["EJABBERD_CONFIG_PATH"] = str(node.workdir / "ejabberd.yml")
        args = [
            *self._base_args(node.name),
            "+zdbbl",
            str(DIST_BUF_BUSY_LIMIT_KB),
            "-mnesia",
            "dir",
            f'"{node.workdir / "db"}"',
            "-ejabberd",
            "log_path",
            f'"{node.workdir / "ejabberd.log"}"',
            "-s",
            "ejabberd",
        ]
        log = (node.workdir / "out.log").open("ab")
        # Its own session: kill() takes the VM and its port programs down together.
        node.process = subprocess.Popen(
            args, cwd=node.workdir, env=env, stdout=log, stderr=log, start_new_session=True
        )
        log.close()

    def _eval(self, expression: str, timeout_s: float = 300.0) -> None:
        """Run an Erlang expression on a hidden helper node; it must evaluate to `ok`."""
        helper = f"facetrack-ctl-{secrets.token_hex(4)}@127.0.0.1"
        code = (
            f'R = (catch begin {expression} end), io:format("~p~n", [R]), '
            "halt(case R of ok -> 0; _ -> 1 end)."
        )
        result = subprocess.run(
            [*self._base_args(helper), "-hidden", "-eval", code],
            cwd=self.workdir,
            env=self._env(self.workdir),
            capture_output=True,
            timeout=timeout_s,
        )
        if result.returncode != 0:
            out = (result.stdout + result.stderr).decode(errors="replace")[-800:]
            raise BrokerError(f"ejabberd cluster command failed: {out}")

    def restart(self, index: int, timeout_s: float = 60.0) -> None:
        """Start a killed node again (it rejoins the cluster from its mnesia directory)."""
        node = self.nodes[index]
        self._start_node(node)
        if not wait_for_port(self.host, node.port, timeout_s):
            raise BrokerError(f"ejabberd node {node.name} did not come back on port {node.port}")


def make_pki(directory: Path, devices: Sequence[str], readers: Sequence[str] = ()) -> None:
    """CA, server certificate and clients by deploy/mosquitto/facetrack-broker.sh itself."""
    script = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "facetrack-broker.sh"

    def run(*args: str) -> None:
        subprocess.run([str(script), *args, "--dir", str(directory)], check=True, capture_output=True)

    run("init", "--server-name", "localhost", "--server-name", "127.0.0.1")
    for name in readers:
        if not (directory / "clients" / name / "password").is_file():
            run("add-user", name)
    for name in devices:
        if not (directory / "clients" / name / "password").is_file():
            run("add-device", name)


def roles(pki: Path) -> dict[str, str]:
    """Every client of a facetrack-broker.sh folder with its role."""
    from agent.devtools.ejabberd_config import clients_in

    return {client.name: client.role for client in clients_in(pki)}
