"""Faces kept for naming: which faces a track keeps (pure), the bounded store in the state directory
(a real SQLite file), and a real agent through a broker outage longer than the bounds.

The store's age bound is tested with a clock the test advances (the store takes its clock as an
argument); nothing else is simulated.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from agent.classifier.labels import UNKNOWN
from agent.devtools.mosquitto import MosquittoBroker
from agent.pipeline.enrolment import FaceCandidate, FaceKeeper, margin_crop, quality_score
from agent.runtime.face_store import FaceBounds, FaceStore
from agent.vision.face_quality import FaceQuality
from agent.vision.types import BBox
from tests.enrolment_helpers import Tap, agent, finish, index_lines, log_records, start_collect

# -- which faces a track keeps ---------------------------------------------------------------------


def _candidate(height: float, sharpness: float = 100.0, turn: float = 0.0) -> FaceCandidate:
    crop = np.zeros((8, 8, 3), dtype=np.uint8)
    return FaceCandidate(FaceQuality(height, sharpness, turn), np.ones(4, dtype=np.float32), crop)


def _observe(
    keeper: FaceKeeper, track: int, frame: int, height: float, confidence: float | None = None
) -> None:
    keeper.observe(
        track, _candidate(height), frame_index=frame, media_s=frame / 25, wall_ts="t", confidence=confidence
    )


def test_quality_score_prefers_bigger_sharper_frontal_faces() -> None:
    assert quality_score(FaceQuality(80, 40, 0.0)) == 1.0
    assert quality_score(FaceQuality(40, 40, 0.0)) == 0.5
    assert quality_score(FaceQuality(80, 20, 0.0)) == 0.5
    assert quality_score(FaceQuality(80, 40, 0.5)) == 0.5


def test_keeper_keeps_the_best_faces_apart_and_only_for_unknown_tracks() -> None:
    keeper = FaceKeeper(per_track=3, min_gap=5)
    for frame, height in enumerate([10, 20, 30, 40, 50, 60, 70, 80, 5, 5, 5, 5, 5, 5, 75]):
        _observe(keeper, 1, frame, height)
        _observe(keeper, 2, frame, height)
    kept = keeper.finish(1, UNKNOWN)
    # Best first, no two within 5 frames. Kept online: a better face replaces a kept neighbour, so
    # the rising run 0..7 leaves its peak (frame 7, 80 px); 14 (75 px) replaced 12 (5 px).
    assert [k.frame_index for k in kept] == [7, 14]
    assert all(k.label == UNKNOWN for k in kept)
    assert keeper.finish(1, UNKNOWN) == [], "a track's faces are handed out once"
    assert keeper.finish(2, "alice") == [], "a named track keeps nothing"
    assert keeper.track_ids() == []


def test_keeper_low_confidence_named_tracks_are_kept_when_asked() -> None:
    keeper = FaceKeeper(per_track=2, low_confidence=0.6)
    _observe(keeper, 1, 0, 50, confidence=0.55)
    _observe(keeper, 2, 0, 50, confidence=0.9)
    unsure = keeper.finish(1, "alice")
    assert [(k.label, k.confidence) for k in unsure] == [("alice", 0.55)]
    assert keeper.finish(2, "bob") == []


def test_margin_crop_is_a_bounded_copy_around_the_face() -> None:
    image = np.arange(400 * 600 * 3, dtype=np.uint32).reshape(400, 600, 3).astype(np.uint8)
    crop = margin_crop(image, BBox(100, 100, 300, 300), 160)
    assert crop is not None and max(crop.shape[:2]) == 160
    small = margin_crop(image, BBox(10, 10, 30, 30), 160)
    assert small is not None and small.shape[:2] == (40, 40)  # clipped at the frame's edge, not scaled up
    small[:] = 0
    assert image[0:40, 0:40].any(), "the crop is a copy: the frame is reused for the next one"
    assert margin_crop(image, BBox(5, 5, 5, 5), 160) is None


# -- the bounded store ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_store_drops_the_oldest_past_each_bound_and_counts_them(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "faces.sqlite3"
    store = FaceStore(path, FaceBounds(max_faces=3, max_bytes=1000, max_age_s=60), clock=clock)
    for k in range(5):
        store.add(f"face-{k}".encode())
    assert [p for _, p in store.oldest(10)] == [b"face-2", b"face-3", b"face-4"]
    assert store.dropped_total == 2
    # Bytes: a 600-byte face pushes out what it needs.
    store.add(b"x" * 600)
    assert store.bytes <= 1000 and [p[:6] for _, p in store.oldest(10)][-1] == b"xxxxxx"
    assert store.add(b"y" * 1001) == 1, "a face larger than the byte bound is dropped itself"
    dropped = store.dropped_total
    # Age: everything older than 60 s goes when read.
    clock.now += 61
    assert store.oldest(10) == [] and store.depth == 0
    assert store.dropped_total > dropped
    store.add(b"new")
    (face_id, _), *_ = store.oldest(1)
    store.delete(face_id)
    store.delete(face_id)  # a second ack of the same face is harmless
    assert store.depth == 0
    total = store.dropped_total
    store.close()
    # A restart keeps the faces and the count.
    store = FaceStore(path, FaceBounds(max_faces=3, max_bytes=1000, max_age_s=60), clock=clock)
    store.add(b"after")
    store.close()
    again = FaceStore(path, FaceBounds(max_faces=3, max_bytes=1000, max_age_s=60), clock=clock)
    assert [p for _, p in again.oldest(10)] == [b"after"] and again.dropped_total == total
    again.close()


def test_store_adds_a_track_s_faces_at_once_within_the_bounds(tmp_path: Path) -> None:
    """add_many (one transaction for the faces of the tracks that just ended) keeps the bounds and
    the count as one add per face would, in order, an oversized face dropped itself."""
    path = tmp_path / "faces.sqlite3"
    store = FaceStore(path, FaceBounds(max_faces=3, max_bytes=100, max_age_s=60))
    store.add(b"a")
    assert store.add_many([b"b", b"c", b"y" * 101, b"d", b"e", b"f"]) == 4
    assert [p for _, p in store.oldest(10)] == [b"d", b"e", b"f"]
    assert store.depth == 3 and store.bytes == 3 and store.dropped_total == 4
    assert store.add_many([]) == 0
    store.close()
    again = FaceStore(path, FaceBounds(max_faces=3, max_bytes=100, max_age_s=60))
    assert [p for _, p in again.oldest(10)] == [b"d", b"e", b"f"] and again.dropped_total == 4
    again.close()


def test_store_opened_with_smaller_bounds_trims_at_once(tmp_path: Path) -> None:
    path = tmp_path / "faces.sqlite3"
    store = FaceStore(path, FaceBounds(10, 10_000, 3600))
    for k in range(6):
        store.add(bytes([k]) * 10)
    store.close()
    smaller = FaceStore(path, FaceBounds(2, 10_000, 3600))
    assert smaller.depth == 2 and smaller.dropped_total == 4
    smaller.close()


# -- a real agent through an outage ---------------------------------------------------------------

MAX_FACES = 5


@pytest.mark.timeout(1800)
def test_outage_longer_than_the_bounds_drops_oldest_faces_never_an_event(
    mosquitto: MosquittoBroker, assets_dir: Path, tmp_path: Path
) -> None:
    """The broker is down for a whole run of the clip: the face store keeps the newest MAX_FACES and
    counts the rest as dropped, while every event waits in the outbox. When the broker is back, a
    restart of the agent sends exactly the stored faces, and the events."""
    state = tmp_path / "state"
    clip = assets_dir / "data" / "video" / "hamilton_clip.mp4"
    mosquitto.stop()
    run = agent(
        mosquitto, "cam1", state, ["--input", str(clip), "--flush-timeout", "0"],
        FACETRACK_ENROLMENT__MAX_FACES=str(MAX_FACES),
    )  # fmt: skip
    code, out, err = finish(run)
    assert code == 0, err[-2000:]
    logs = out + err
    stopped = log_records(logs, "agent_stopped")[-1]
    # Every event is stored: the face store's bound cost no event.
    assert stopped["outbox_depth"] == stopped["events"] > 0
    with sqlite3.connect(state / "outbox.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == stopped["events"]
    store = FaceStore(state / "faces.sqlite3", FaceBounds(MAX_FACES, 50 * 2**20, 3600))
    kept = [json.loads(p) for _, p in store.oldest(100)]
    dropped = store.dropped_total
    store.close()
    assert len(kept) == MAX_FACES and dropped > 0
    assert sum(r["count"] for r in log_records(logs, "faces_dropped")) == dropped
    # The newest stayed: the last track to end (the end of the clip) is among the kept faces.
    assert max(k["frame"] for k in kept) > 200

    mosquitto.start()
    inbox = tmp_path / "inbox"
    collector = start_collect(mosquitto, inbox)
    tap = Tap(mosquitto, ["facetrack/cam1/status", "facetrack/cam1/availability", "facetrack/cam1/events"])
    # A restart with one frame publishes what the outage left, events and faces. Its bound is
    # raised, so the faces of its own frame do not push out the stored ones before they are sent.
    again = agent(mosquitto, "cam1", state, ["--input", str(clip), "--max-frames", "1"])
    code, _, err = finish(again)
    assert code == 0, err[-2000:]
    tap.wait_until(lambda: tap.payloads("facetrack/cam1/availability")[-1:] == [b"stopped"], "stopped")
    status = json.loads(tap.payloads("facetrack/cam1/status")[-1])
    assert status["enrolment"]["faces_queued"] == 0
    assert status["enrolment"]["faces_dropped"] == dropped
    assert status["events_dropped"] == 0
    seqs = {e["seq"] for e in tap.events("cam1")}
    assert set(range(1, stopped["events"] + 1)) <= seqs, "every event of the outage arrived"
    tap.wait_until(lambda: len(index_lines(inbox)) >= MAX_FACES, "the stored faces in the inbox")
    tap.close()
    collector.terminate()
    finish(collector)
    assert {r["id"] for r in index_lines(inbox)} >= {k["id"] for k in kept}
