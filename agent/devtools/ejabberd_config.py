"""Render deploy/ejabberd/ejabberd.yml.in for a fleet made by deploy/mosquitto/facetrack-broker.sh.

    python -m agent.devtools.ejabberd_config --pki /etc/mosquitto/facetrack --out ejabberd.yml

The cluster reuses the single broker's files: its CA, server certificate and key, and one client
folder per device or user (clients/NAME/{role,password,...}). ejabberd's mod_mqtt maps a topic
filter to an access rule and allows a publish or subscribe when any matching filter's rule allows
the user, so the mosquitto ACL becomes one rule per client. ejabberd cannot substitute the user
name into a filter (mosquitto's %u), hence the generated per-device lines: re-render and reload
(`ejabberdctl reload_config`) after adding a device, as after `facetrack-broker.sh add-device`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "ejabberd" / "ejabberd.yml.in"
# Users with a fixed role, as in deploy/mosquitto/acl.
SERVICE_USERS = ("trainer", "viewer", "homeassistant")
READ_FLEET = ("facetrack/+/events", "facetrack/+/status", "facetrack/+/availability")


@dataclass(frozen=True)
class Client:
    name: str
    role: str  # "device", "reader" or one of SERVICE_USERS


def clients_in(pki: Path) -> list[Client]:
    """Every client folder under PKI/clients with its role (as facetrack-broker.sh records it)."""
    found = []
    root = pki / "clients"
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir():
            continue
        if folder.name in SERVICE_USERS:
            role = folder.name
        else:
            role_file = folder / "role"
            role = role_file.read_text().strip() if role_file.is_file() else "device"
        if role not in ("device", "reader", *SERVICE_USERS):
            raise ValueError(f"{folder / 'role'} says {role!r} (expected device or reader)")
        found.append(Client(folder.name, role))
    return found


def _rule_name(client: Client) -> str:
    # Access rule names share one namespace with ejabberd's own; prefix them.
    return f"ft_{client.name}"


def _grants(client: Client) -> tuple[list[str], list[str]]:
    """(publish filters, subscribe filters) of one client: deploy/mosquitto/acl, line by line."""
    name = client.name
    if client.role == "device":
        publish = [f"facetrack/{name}/events", f"facetrack/{name}/status", f"facetrack/{name}/availability"]
        publish.append(f"homeassistant/+/{name}/+/config")
        return publish, [f"facetrack/{name}/#", "facetrack/all/model", "homeassistant/status"]
    if client.role == "trainer":
        return ["facetrack/+/model"], list(READ_FLEET)
    if client.role == "homeassistant":
        return ["homeassistant/status"], [*READ_FLEET, "homeassistant/#"]
    return [], list(READ_FLEET)  # viewer and readers


def render(
    clients: Iterable[Client],
    *,
    port: int,
    certfile: Path,
    cafile: Path,
    ip: str = "0.0.0.0",
    tls_verify: bool = True,
    template: Path = TEMPLATE,
) -> str:
    acls: list[str] = []
    rules: list[str] = []
    publish: dict[str, list[str]] = {}
    subscribe: dict[str, list[str]] = {}
    for client in clients:
        rule = _rule_name(client)
        acls.append(f"  {rule}:\n    user: {client.name}")
        rules.append(f"  {rule}:\n    allow: {rule}")
        pub, sub = _grants(client)
        for topic in pub:
            publish.setdefault(topic, []).append(rule)
        for topic in sub:
            subscribe.setdefault(topic, []).append(rule)
    # One access rule per filter: a filter granted to several clients gets a rule of its own that
    # allows each of their ACLs.
    for kind, table in (("pub", publish), ("sub", subscribe)):
        for index, (topic, owners) in enumerate(sorted(table.items())):
            if len(owners) > 1:
                combined = f"ft_{kind}_{index}"
                # Conditions listed under one `allow` must all hold; one entry per owner is an "or".
                allow = "".join(f"\n    - allow: {owner}" for owner in owners)
                rules.append(f"  {combined}:{allow}")
                table[topic] = [combined]
    if not acls:
        # An empty access table means "no restriction" to ejabberd: deny everything instead.
        acls.append("  ft_nobody:\n    user: ft-nobody-placeholder")
    text = template.read_text()
    values = {
        "@PORT@": str(port),
        "@IP@": ip,
        "@CERTFILE@": str(certfile),
        "@CAFILE@": str(cafile),
        "@TLS_VERIFY@": "true" if tls_verify else "false",
        "@ACLS@": "\n".join(acls),
        "@ACCESS_RULES@": "\n".join(rules) or "  ft_none:\n    deny: all",
        "@ACCESS_PUBLISH@": _filters(publish),
        "@ACCESS_SUBSCRIBE@": _filters(subscribe),
    }
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def _filters(table: dict[str, list[str]]) -> str:
    if not table:
        return '      "#": none'
    return "\n".join(f'      "{topic}": {owners[0]}' for topic, owners in sorted(table.items()))


def server_pem(pki: Path) -> str:
    """ejabberd reads the certificate and its key from one PEM file."""
    return (pki / "server.crt").read_text() + (pki / "server.key").read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.devtools.ejabberd_config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pki", type=Path, required=True, help="facetrack-broker.sh's DIR")
    parser.add_argument("--port", type=int, default=8883, help="MQTT over TLS port [8883]")
    parser.add_argument("--ip", default="0.0.0.0", help="address to listen on [0.0.0.0]")
    parser.add_argument("--out", type=Path, required=True, help="ejabberd.yml to write")
    args = parser.parse_args(argv)
    if not (args.pki / "ca.crt").is_file() or not (args.pki / "server.key").is_file():
        print(
            f"ejabberd_config: {args.pki} has no ca.crt/server.key: run facetrack-broker.sh init",
            file=sys.stderr,
        )
        return 2
    pem = args.out.parent / "facetrack-server.pem"
    pem.write_text(server_pem(args.pki))
    pem.chmod(0o600)
    text = render(
        clients_in(args.pki),
        port=args.port,
        certfile=pem.resolve(),
        cafile=(args.pki / "ca.crt").resolve(),
        ip=args.ip,
    )
    args.out.write_text(text)
    print(f"wrote {args.out} and {pem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
