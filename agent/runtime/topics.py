"""MQTT topic names for one device; the single place that spells the topic layout."""

from __future__ import annotations

from dataclasses import dataclass

from agent.events.topic_rules import check_topic_part

__all__ = ["FLEET", "FleetTopics", "Topics", "check_topic_part"]

FLEET = "all"


@dataclass(frozen=True)
class FleetTopics:
    """Topics that address the fleet rather than one device: the trainer's view."""

    prefix: str

    def __post_init__(self) -> None:
        try:
            check_topic_part(self.prefix)
        except ValueError as exc:
            raise ValueError(f"topic prefix {self.prefix!r} {exc}") from None

    @property
    def model(self) -> str:
        return f"{self.prefix}/{FLEET}/model"

    @property
    def all_events(self) -> str:
        """The filter a fleet-wide subscriber uses: events of every device under this prefix."""
        return f"{self.prefix}/+/events"

    @property
    def all_faces(self) -> str:
        """The filter the trainer's `collect` uses: faces kept for naming by every device."""
        return f"{self.prefix}/+/faces"

    def model_for(self, device: str) -> str:
        """The model topic of one device, or of the whole fleet when `device` is FLEET."""
        return self.model if device == FLEET else Topics(self.prefix, device).model


@dataclass(frozen=True)
class Topics:
    """`<prefix>/<device>/<leaf>` topics; `fleet_model` addresses every device at once."""

    prefix: str
    device_id: str

    def __post_init__(self) -> None:
        for name, value, one_level in (("prefix", self.prefix, False), ("device_id", self.device_id, True)):
            try:
                check_topic_part(value, one_level=one_level)
            except ValueError as exc:
                raise ValueError(f"topic {name} {value!r} {exc}") from None
        if self.device_id == FLEET:
            raise ValueError(f"device_id {FLEET!r} is reserved for the whole fleet")

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
    def faces(self) -> str:
        """Faces of unknown people kept for naming (enrolment; biometric, only the trainer reads)."""
        return self.device("faces")

    @property
    def fleet_model(self) -> str:
        return FleetTopics(self.prefix).model

    @property
    def all_events(self) -> str:
        """The filter a fleet-wide subscriber uses: events of every device under this prefix."""
        return FleetTopics(self.prefix).all_events
