"""The committed JSON Schema matches the event models, and real events validate against it."""

from __future__ import annotations

import json

from agent.cli import main
from agent.events.schema import IdentityEvent, TrackEnded, parse_event, utc_now
from agent.runtime.schema_cli import SCHEMA_FILE, render_schema


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text() == render_schema(), "run `facetrack-agent schema --write`"
    assert main(["schema", "--check"]) == 0


def test_schema_names_every_event_type() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    types = {
        definition["properties"]["type"]["const"]
        for definition in schema["$defs"].values()
        if "type" in definition.get("properties", {})
    }
    assert types == {"track_started", "identity", "track_ended", "model_applied", "model_rejected"}


def test_events_round_trip_and_unknown_fields_are_ignored() -> None:
    now = utc_now()
    ended = TrackEnded(
        device="pi-1",
        seq=7,
        ts=now,
        frame=40,
        track_id=3,
        label=None,
        first_seen=now,
        last_seen=now,
        duration_s=0.0,
        frames=12,
    )
    assert parse_event(ended.model_dump_json()) == ended
    identity = IdentityEvent(
        device="pi-1", seq=8, ts=now, frame=41, track_id=3, label="ada", confidence=0.9, votes=3
    )
    payload = identity.model_dump()
    payload["surprise"] = 1  # a field a newer agent may add: forward compatible, not an error
    assert parse_event(json.dumps(payload, default=str)) == identity
