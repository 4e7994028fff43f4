"""MQTT topic names for one device; the single place that spells the topic layout."""

from __future__ import annotations

from dataclasses import dataclass

FLEET = "all"


@dataclass(frozen=True)
class Topics:
    """`<prefix>/<device>/<leaf>` topics; `fleet_model` addresses every device at once."""

    prefix: str
    device_id: str

    def __post_init__(self) -> None:
        for name, value in (("prefix", self.prefix), ("device_id", self.device_id)):
            if not value or any(c in value for c in "#+\0") or value.startswith("/") or value.endswith("/"):
                raise ValueError(f"topic {name} {value!r} must be non-empty, without '#', '+' or edge '/'")
        if "/" in self.device_id or self.device_id == FLEET:
            raise ValueError(f"device_id {self.device_id!r} must be one topic level and not {FLEET!r}")

    def device(self, leaf: str) -> str:
        return f"{self.prefix}/{self.device_id}/{leaf}"

    @property
    def events(self) -> str:
        return self.device("events")

    @property
    def availability(self) -> str:
        return self.device("availability")

    @property
    def status(self) -> str:
        return self.device("status")

    @property
    def model(self) -> str:
        return self.device("model")

    @property
    def fleet_model(self) -> str:
        return f"{self.prefix}/{FLEET}/model"

    @property
    def all_events(self) -> str:
        """The filter a fleet-wide subscriber uses: events of every device under this prefix."""
        return f"{self.prefix}/+/events"
