"""Issue 12 item 3: the event schema is forward compatible. A consumer that validates events with
the JSON Schema of this release (`facetrack-agent schema`, or agent/events/events.schema.json)
keeps accepting them when a later release adds an optional field; the agent's own models ignore
such a field too. The events validated here are real ones, made by the event builder and the
outbox, with their epoch and media time."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from agent.events.builder import EventBuilder
from agent.events.clock import SourceClock
from agent.events.schema import ModelApplied, ModelRejected, parse_event
from agent.identity.voting import IdentityChange
from agent.runtime.outbox import Outbox
from agent.runtime.schema_cli import SCHEMA_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent


class _Event:
    def __init__(self, kind: str, track_id: int) -> None:
        self.kind, self.track_id, self.tlwh = kind, track_id, np.array([10.0, 20.0, 30.0, 60.0])


def _real_events(tmp_path: Path) -> list[dict[str, Any]]:
    """A track on a 25 fps file: started, named, ended; and the two model events; via the outbox."""
    builder = EventBuilder("pi-1")
    clock = SourceClock()
    start = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    drafts = []
    for index in range(0, 10):
        stamp = clock.stamp(index, start, index / 25)
        builder.observe([type("T", (), {"track_id": 4, "detection_index": 0})()], stamp)
        if index == 2:
            drafts += builder.lifecycle(_Event("confirmed", 4), stamp)
        if index == 5:
            drafts += builder.identity(IdentityChange(4, "ada", 0.8, 3, None), stamp)
    drafts += builder.end_all(clock.stamp(9, start, 9 / 25))
    drafts.append(
        ModelApplied(
            device="pi-1", ts=start, frame=3, model_version="v2", labels=["ada"], apply_latency_s=0.1
        )
    )
    drafts.append(
        ModelRejected(
            device="pi-1", ts=start, frame=3, model_version=None, reason="bad", running_version="v2"
        )
    )
    with Outbox(tmp_path / "outbox.sqlite3", 100, 1 << 20) as outbox:
        return [json.loads(outbox.append(d).model_dump_json()) for d in drafts]


@pytest.fixture(scope="module")
def exported_schema() -> dict[str, Any]:
    """What `facetrack-agent schema` prints: the committed file, exactly."""
    out = subprocess.run(
        [sys.executable, "-m", "agent", "schema"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out == SCHEMA_FILE.read_text()
    schema: dict[str, Any] = json.loads(out)
    return schema


def _no_closed_objects(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("additionalProperties") is False:
            return False
        return all(_no_closed_objects(v) for v in node.values())
    if isinstance(node, list):
        return all(_no_closed_objects(v) for v in node)
    return True


def test_schema_never_closes_an_event_to_new_fields(exported_schema: dict[str, Any]) -> None:
    assert _no_closed_objects(exported_schema)


def test_events_with_a_field_from_a_later_release_validate(
    exported_schema: dict[str, Any], tmp_path: Path
) -> None:
    events = _real_events(tmp_path)
    assert {e["type"] for e in events} == {
        "track_started", "identity", "track_ended", "model_applied", "model_rejected",
    }  # fmt: skip
    validator = jsonschema.Draft202012Validator(exported_schema)
    for event in events:
        validator.validate(event)
        newer = {**event, "gaze": {"yaw": 12.5}, "zone": "porch"}  # fields a later release may add
        validator.validate(newer)
        assert parse_event(json.dumps(newer)) == parse_event(json.dumps(event))
    # The schema still catches what is wrong: a missing or mistyped known field.
    broken = {k: v for k, v in events[0].items() if k != "track_id"}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**events[0], "seq": "seven"})


def test_file_events_carry_media_time_and_epoch(tmp_path: Path) -> None:
    events = _real_events(tmp_path)
    assert len({e["epoch"] for e in events}) == 1 and events[0]["epoch"]
    ended = next(e for e in events if e["type"] == "track_ended")
    assert (ended["first_media_time"], ended["last_media_time"], ended["media_time"]) == (0.0, 0.36, 0.36)
    assert ended["duration_s"] == pytest.approx(0.36)
