"""Event payloads published on `<prefix>/<device>/events` (JSON, QoS 1, not retained).

Subscribers depend on this contract: add optional fields freely, but bump SCHEMA_VERSION for any
change that removes or retypes a field. `facetrack-agent schema` exports it as JSON Schema.

The models ignore fields they do not know, and the exported schema allows them (no
`additionalProperties: false`): a consumer validating with this release's schema keeps working when
a later release adds an optional field.

Time: `ts` is when the agent produced the event. Frame events (track_started, identity,
track_ended) also say where their frame sits in the input: `media_time` is its position in a video
file in seconds, and null for cameras and streams. On a file, `first_seen`/`last_seen` are video
time laid onto the wall clock from the moment the agent began the file, so `duration_s` is seconds
of video whatever the processing speed; on a live source they are capture times.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1

# [x1, y1, x2, y2] in frame pixels.
BBoxList = Annotated[list[float], Field(min_length=4, max_length=4)]


class EventBase(BaseModel):
    # "ignore": unknown fields from a newer agent are dropped, never an error (forward compatible).
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = 1
    device: str
    # 0 until the outbox assigns the next number; subscribers only ever see seq >= 1.
    seq: int = Field(0, ge=0, description="Per-device, strictly increasing by 1, kept across restarts")
    # None until the outbox assigns it, like seq.
    epoch: str | None = Field(
        None,
        description="Id of the device's outbox, made with it: seq restarts at 1 only with a new epoch, "
        "so (device, epoch, seq) tells a reset from a duplicate",
    )
    ts: datetime = Field(description="ISO 8601, UTC")
    frame: int = Field(ge=0, description="Frame index in the source when the event happened")


MEDIA_TIME_DESCRIPTION = "Seconds from the start of the video file to the frame; null for cameras and streams"


class FrameEvent(EventBase):
    """An event about a frame of the input: says where that frame sits in a video file."""

    media_time: float | None = Field(None, ge=0.0, description=MEDIA_TIME_DESCRIPTION)


class TrackStarted(FrameEvent):
    type: Literal["track_started"] = "track_started"
    track_id: int
    bbox: BBoxList


class IdentityEvent(FrameEvent):
    """Sent when a track's identity is first established or changes ("unknown" when it is lost)."""

    type: Literal["identity"] = "identity"
    track_id: int
    label: str
    confidence: float = Field(ge=0.0, le=1.0)
    votes: int = Field(ge=0)
    previous_label: str | None = None
    reason: Literal["votes", "face_disagrees", "claimed"] | None = Field(
        None,
        description="Why: 'votes' (the track's faces decided), 'face_disagrees' (its newest face is "
        "not the named person: the name is withdrawn at once), 'claimed' (a stronger track took the name)",
    )


class TrackEnded(FrameEvent):
    type: Literal["track_ended"] = "track_ended"
    track_id: int
    label: str | None
    first_seen: datetime = Field(description="Live: capture time. File: run start + video time")
    last_seen: datetime = Field(description="Live: capture time. File: run start + video time")
    duration_s: float = Field(ge=0.0, description="last_seen - first_seen: seconds of video for a file")
    frames: int = Field(ge=0)
    first_media_time: float | None = Field(None, ge=0.0, description=MEDIA_TIME_DESCRIPTION)
    last_media_time: float | None = Field(None, ge=0.0, description=MEDIA_TIME_DESCRIPTION)


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
