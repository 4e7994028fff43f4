"""A name never lands on the wrong person (issue 22), end to end on real footage.

The real agent (subprocess, real models, the demo's classifier, a real mosquitto) runs on the demo
clip and on a re-cut of the same footage made here with cv2 (audience, then stage, then audience;
written to the test's temporary directory, never committed). Shots of hamilton_clip.mp4, checked by
eye: stage 0-19 (Miranda and the pianist), audience 20-81, stage 82-210 (Miranda), audience 211-274
(the Obamas). On both, every track labelled lin-manuel-miranda lies within a stage shot, and he is
named in every stage shot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import pytest

from agent.devtools.mosquitto import MosquittoBroker
from tests.test_agent_e2e import LMM, Subscriber, _agent, _assert_contract, _finish, classifier  # noqa: F401

HAMILTON = "data/video/hamilton_clip.mp4"
STAGE = [(0, 20), (82, 211)]
AUDIENCE_1, STAGE_2, AUDIENCE_2 = (20, 82), (82, 211), (211, 275)


def _frames(path: Path) -> tuple[list[Any], float]:
    capture = cv2.VideoCapture(str(path))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames, fps


def _recut(source: Path, out: Path, shots: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Write `shots` of `source` one after another; returns where each shot lies in the new clip."""
    frames, fps = _frames(source)
    assert len(frames) == 275, "the demo clip changed: its shot list above must be checked again"
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    placed: list[tuple[int, int]] = []
    start = 0
    for a, b in shots:
        for image in frames[a:b]:
            writer.write(image)
        placed.append((start, start + b - a))
        start += b - a
    writer.release()
    return placed


def _run_agent(
    tmp_path: Path, broker: MosquittoBroker, video: Path, clf: tuple[bytes, str]
) -> list[dict[str, Any]]:
    sub = Subscriber(broker, ["facetrack/e2e/#"])
    code, err = _finish(_agent(tmp_path, broker, ["--input", str(video)], clf))
    assert code == 0, err[-2000:]
    sub.wait_stopped()
    sub.close()
    events = sub.events()
    _assert_contract(events)
    return events


def _frame_of(media_time: float, fps: float) -> int:
    return int(media_time * fps + 0.5)


def _assert_name_stays_on_stage(
    events: list[dict[str, Any]], stage: list[tuple[int, int]], fps: float
) -> None:
    def on_stage(frame: int) -> tuple[int, int] | None:
        return next((shot for shot in stage if shot[0] <= frame < shot[1]), None)

    named = [e for e in events if e["type"] == "identity" and e["label"] == LMM]
    for event in named:
        assert on_stage(event["frame"]) is not None, f"named off stage: {event}"
    named_tracks = {e["track_id"] for e in named}
    ended = {e["track_id"]: e for e in events if e["type"] == "track_ended"}
    for track in named_tracks | {t for t, e in ended.items() if e["label"] == LMM}:
        end = ended[track]
        first = _frame_of(end["first_media_time"], fps)
        last = _frame_of(end["last_media_time"], fps)
        shot = on_stage(first)
        assert shot is not None and shot[0] <= last < shot[1], (
            f"track {track} labelled {LMM} spans frames {first}-{last}, beyond the stage shots {stage}: {end}"
        )
    for shot in stage:
        assert any(shot[0] <= e["frame"] < shot[1] for e in named), f"{LMM} not named in stage shot {shot}"
    # Withdrawals say so (and none of his is needed on these shots, where his face never disagrees).
    assert all(
        e.get("reason") in ("votes", "face_disagrees", "claimed") for e in events if e["type"] == "identity"
    )


@pytest.mark.parametrize("cut", ["demo clip", "audience-stage-audience"])
def test_his_name_stays_on_the_stage_shots(
    tmp_path: Path,
    asset: Any,
    mosquitto: MosquittoBroker,
    classifier: tuple[bytes, str],  # noqa: F811 (the shared fixture, imported above)
    cut: str,
) -> None:
    source: Path = asset(HAMILTON)
    _, fps = _frames(source)
    if cut == "demo clip":
        video, stage, obama_shot = source, STAGE, AUDIENCE_2
    else:
        video = tmp_path / "recut.mp4"
        obama_shot, stage_b, _ = _recut(source, video, [AUDIENCE_2, STAGE_2, AUDIENCE_1])
        stage = [stage_b]
    events = _run_agent(tmp_path, mosquitto, video, classifier)
    print(
        cut,
        [(e["frame"], e["type"], e.get("track_id"), e.get("label")) for e in events if e["type"] != "status"],
    )
    _assert_name_stays_on_stage(events, stage, fps)
    # Barack Obama, enrolled in the demo, is named in his audience shot and nowhere else (his faces
    # are turned about 1.6 eye distances: docs/scene-cuts.md#why-obama-stayed-unknown).
    identities = [e for e in events if e["type"] == "identity"]
    obama = [e for e in identities if e["label"] == "obama"]
    assert obama and all(obama_shot[0] <= e["frame"] < obama_shot[1] for e in obama), obama
    # Only the demo's enrolled people who are in the footage get a name (the pianist's profile
    # fills the first audience shot: Alex Lacamoire).
    assert {e["label"] for e in identities} <= {LMM, "alex-lacamoire", "obama", "unknown"}
