"""Event payloads published on `<prefix>/<device>/events` (JSON, QoS 1, not retained).

Subscribers depend on this contract: add optional fields freely, but bump SCHEMA_VERSION for any
change that removes or retypes a field. `facetrack-agent schema` exports it as JSON Schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1

# [x1, y1, x2, y2] in frame pixels.
BBoxList = Annotated[list[float], Field(min_length=4, max_length=4)]


class EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    device: str
    # 0 until the outbox assigns the next number; subscribers only ever see seq >= 1.
    seq: int = Field(0, ge=0, description="Per-device, strictly increasing by 1, kept across restarts")
    ts: datetime = Field(description="ISO 8601, UTC")
    frame: int = Field(ge=0, description="Frame index in the source when the event happened")


class TrackStarted(EventBase):
    type: Literal["track_started"] = "track_started"
    track_id: int
    bbox: BBoxList


class IdentityEvent(EventBase):
    """Sent when a track's identity is first established or changes ("unknown" when it is lost)."""

    type: Literal["identity"] = "identity"
    track_id: int
    label: str
    confidence: float = Field(ge=0.0, le=1.0)
    votes: int = Field(ge=0)
    previous_label: str | None = None


class TrackEnded(EventBase):
    type: Literal["track_ended"] = "track_ended"
    track_id: int
    label: str | None
    first_seen: datetime
    last_seen: datetime
    duration_s: float = Field(ge=0.0)
    frames: int = Field(ge=0)


class ModelApplied(EventBase):
    type: Literal["model_applied"] = "model_applied"
    model_version: str
    labels: list[str]
    apply_latency_s: float = Field(ge=0.0, description="From message arrival to first frame classified")
    previous_version: str | None = None
    # True when the bundle received is the one already running (retained redelivery, re-publish).
    already_running: bool = False


class ModelRejected(EventBase):
    type: Literal["model_rejected"] = "model_rejected"
    model_version: str | None
    reason: str
    running_version: str | None
    # Machine-readable reason (agent.classifier.errors.RejectCode), e.g. "bad_signature".
    code: str | None = None


Event = Annotated[
    TrackStarted | IdentityEvent | TrackEnded | ModelApplied | ModelRejected,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_event(payload: bytes | str) -> Event:
    return EVENT_ADAPTER.validate_json(payload)


def event_json_schema() -> dict[str, object]:
    return EVENT_ADAPTER.json_schema()
