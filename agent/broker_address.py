"""Broker addresses: `host`, `host:port`, `[v6]:port`, and comma-separated lists of them.

One parser for the agent's `[mqtt] brokers` and `--broker`, and the trainer's `--broker`, so a
list means the same thing everywhere. Every malformed entry is a ValueError saying which one and
why, phrased to end a config error line.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# A DNS name or an IPv4 address: labels of letters, digits, '-' and '_' (some LAN names have it).
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?")


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def check_host(host: str) -> str:
    """A single host name or IP address; raises ValueError for an empty one, a port or a list."""
    if not host or host != host.strip():
        raise ValueError("must be a host name or IP address (empty or with spaces)")
    if "," in host:
        raise ValueError(
            "is a list: give several brokers as mqtt.brokers = ['a:1883', 'b:1883'] "
            "(or --broker a:1883,b:1883)"
        )
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            raise ValueError(
                "must be a host name without a port: set mqtt.port, or mqtt.brokers = ['host:port']"
            ) from None
        return host.strip("[]")
    if not _HOST_NAME.fullmatch(host):
        raise ValueError("is not a valid host name or IP address")
    return host


def parse_address(text: str, default_port: int) -> BrokerAddress:
    """HOST, HOST:PORT or [IPv6]:PORT (a bare IPv6 address takes the default port)."""
    entry = text.strip()
    if entry.startswith("["):
        host, closed, rest = entry[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"broker {text!r}: want [IPv6]:PORT")
        port_text = rest[1:]
    elif entry.count(":") > 1:
        host, port_text = entry, ""  # a bare IPv6 address
    else:
        host, _, port_text = entry.partition(":")
    try:
        host = check_host(host)
    except ValueError as exc:
        raise ValueError(f"broker {text!r}: host {exc}") from None
    if not port_text:
        return BrokerAddress(host, default_port)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"broker {text!r}: port must be a number from 1 to 65535")
    return BrokerAddress(host, int(port_text))


def parse_addresses(entries: str | list[str], default_port: int) -> tuple[BrokerAddress, ...]:
    """A comma-separated string or a list of entries (each may itself hold commas).

    Order is kept (the first is tried first); a repeated address is an error, since trying the
    same broker twice in a row is never what a fleet list means.
    """
    parts = entries.split(",") if isinstance(entries, str) else [p for e in entries for p in e.split(",")]
    addresses: list[BrokerAddress] = []
    for part in parts:
        if not part.strip():
            raise ValueError("broker list has an empty entry (a stray comma?)")
        address = parse_address(part, default_port)
        if address in addresses:
            raise ValueError(f"broker {str(address)!r} is listed twice")
        addresses.append(address)
    if not addresses:
        raise ValueError("broker list is empty")
    return tuple(addresses)


class BrokerRotation:
    """Which broker to try next: the current one until it fails, then the next in the list.

    `round_failed` is true once every broker failed since the last connect, the moment the
    caller waits its backoff; with one broker that is every failure, as before lists existed.
    """

    def __init__(self, addresses: tuple[BrokerAddress, ...]) -> None:
        if not addresses:
            raise ValueError("no broker address")
        self.addresses = addresses
        self._index = 0
        self._failed_in_round = 0

    @property
    def current(self) -> BrokerAddress:
        return self.addresses[self._index]

    @property
    def index(self) -> int:
        return self._index

    def connected(self) -> None:
        self._failed_in_round = 0

    def failed(self) -> None:
        """The current broker failed to connect or its session was lost: move to the next."""
        self._failed_in_round += 1
        self._index = (self._index + 1) % len(self.addresses)

    @property
    def round_failed(self) -> bool:
        return self._failed_in_round >= len(self.addresses)

    def start_round(self) -> None:
        self._failed_in_round = 0
