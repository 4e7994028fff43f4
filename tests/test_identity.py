"""Identity voting, face-to-person binding and event building: the pure core, no broker, no models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent.classifier.labels import UNKNOWN
from agent.events.builder import EventBuilder
from agent.events.clock import FrameStamp
from agent.events.schema import IdentityEvent, TrackEnded, TrackStarted, parse_event
from agent.identity.binding import bind_faces
from agent.identity.voting import IdentityChange, IdentityResolver
from agent.vision.types import BBox

# ---------------------------------------------------------------------------------------------
# identity voting


def test_no_announcement_before_min_votes() -> None:
    r = IdentityResolver(min_votes=3, min_confidence=0.5)
    assert r.observe(1, "ana", 0.9) == []
    assert r.observe(1, "ana", 0.8) == []
    changes = r.observe(1, "ana", 0.7)
    assert changes == [IdentityChange(1, "ana", 0.8, 3, None)]
    assert r.label_of(1) == "ana" and r.is_identified(1)
    # More agreeing votes change nothing subscribers need to hear about.
    assert r.observe(1, "ana", 0.9) == []


def test_low_confidence_and_unknown_predictions_never_name_a_track() -> None:
    r = IdentityResolver(min_votes=2, min_confidence=0.6)
    for _ in range(10):
        assert r.observe(5, "ana", 0.55) == []
        assert r.observe(5, UNKNOWN, 0.2) == []
    assert r.label_of(5) == UNKNOWN
    assert r.votes_of(5) == 20


def test_weighted_vote_prefers_confident_label() -> None:
    r = IdentityResolver(min_votes=2, min_confidence=0.5)
    # Before any name: two unknown faces (weight 0.9 each) outweigh two weak ones for bob (0.52).
    for label, conf in ((UNKNOWN, 0.1), (UNKNOWN, 0.1), ("bob", 0.52), ("bob", 0.52)):
        assert r.observe(1, label, conf) == []
    # One confident face for bob tips it: 1.99 against 1.8.
    changes = r.observe(1, "bob", 0.95)
    assert r.label_of(1) == "bob"
    assert [(c.label, c.previous_label, c.reason) for c in changes] == [("bob", None, "votes")]


def test_a_face_for_another_name_withdraws_the_name_at_once_before_it_votes() -> None:
    r = IdentityResolver(min_votes=2, min_confidence=0.5)
    for _ in range(5):
        r.observe(1, "bob", 0.9)
    assert r.label_of(1) == "bob" and r.holders() == {"bob": 1}
    # One good face of ana: bob's name goes now (his five votes do not outvote what is seen now).
    changes = r.observe(1, "ana", 0.6)
    assert changes == [IdentityChange(1, UNKNOWN, 0.0, 5, "bob", "face_disagrees")]
    assert r.label_of(1) == UNKNOWN and r.holders() == {}
    # The earlier votes are gone: ana needs min_votes faces of her own, bob too.
    assert r.votes_of(1) == 1
    changes = r.observe(1, "ana", 0.6)
    assert [(c.label, c.previous_label, c.reason) for c in changes] == [("ana", UNKNOWN, "votes")]


def test_an_unknown_face_withdraws_a_name_and_agreeing_faces_bring_it_back() -> None:
    r = IdentityResolver(min_votes=3, min_confidence=0.0)
    for _ in range(3):
        r.observe(7, "ana", 0.7)
    assert r.label_of(7) == "ana"
    # A face the classifier does not know (a stranger now in the box, or a poor view of ana).
    changes = r.observe(7, UNKNOWN, 0.2)
    assert [(c.label, c.reason) for c in changes] == [(UNKNOWN, "face_disagrees")]
    assert r.observe(7, "ana", 0.7) == [] and r.observe(7, "ana", 0.7) == []
    # Named again only once her faces outweigh the unknown one and reach min_votes.
    changes = r.observe(7, "ana", 0.7)
    assert [(c.label, c.previous_label, c.reason) for c in changes] == [("ana", UNKNOWN, "votes")]


def test_withdrawing_the_holder_lets_the_track_it_beat_claim_the_name() -> None:
    r = IdentityResolver(min_votes=2, min_confidence=0.5)
    for _ in range(3):
        r.observe(1, "ana", 0.95)
    for _ in range(2):
        r.observe(2, "ana", 0.6)
    assert r.holders() == {"ana": 1} and r.label_of(2) == UNKNOWN
    changes = r.observe(1, "bob", 0.9)
    assert [(c.track_id, c.label, c.reason) for c in changes] == [
        (1, UNKNOWN, "face_disagrees"),
        (2, "ana", "votes"),
    ]
    assert r.holders() == {"ana": 2}


def test_unknown_evidence_can_revert_an_identity() -> None:
    r = IdentityResolver(min_votes=2, min_confidence=0.5)
    r.observe(1, "ana", 0.6)
    assert r.observe(1, "ana", 0.6)[0].label == "ana"
    changes: list[IdentityChange] = []
    for _ in range(4):
        changes += r.observe(1, UNKNOWN, 0.1)
    assert [c.label for c in changes] == [UNKNOWN]
    assert changes[0].previous_label == "ana"


def test_stronger_later_claim_takes_the_name_and_loser_reverts() -> None:
    r = IdentityResolver(min_votes=2, min_confidence=0.5)
    r.observe(1, "ana", 0.6)
    r.observe(1, "ana", 0.6)
    assert r.holders() == {"ana": 1}
    # Track 2 qualifies with a weaker claim first: it stays unknown.
    r.observe(2, "ana", 0.55)
    assert r.observe(2, "ana", 0.55) == []
    assert r.label_of(2) == UNKNOWN
    # Its claim grows stronger than track 1's: it takes the name, track 1 goes back to unknown.
    changes = r.observe(2, "ana", 0.9)
    assert [(c.track_id, c.label, c.previous_label) for c in changes] == [
        (1, UNKNOWN, "ana"),
        (2, "ana", None),
    ]
    assert r.holders() == {"ana": 2}
    assert r.label_of(1) == UNKNOWN


def test_loser_falls_back_to_its_next_best_label() -> None:
    r = IdentityResolver(min_votes=3, min_confidence=0.5)
    # Unnamed track 1: faces for ana and bob in turn; ana reaches min_votes first.
    for label, conf in (("ana", 0.7), ("bob", 0.6), ("ana", 0.7), ("bob", 0.6), ("ana", 0.7)):
        r.observe(1, label, conf)
    assert r.label_of(1) == "ana"
    changes: list[IdentityChange] = []
    for _ in range(3):
        changes += r.observe(2, "ana", 0.95)
    assert r.label_of(2) == "ana" and r.label_of(1) == UNKNOWN
    assert (1, UNKNOWN, "claimed") in [(c.track_id, c.label, c.reason) for c in changes]
    # Its votes for bob still stand (they were never contradicted): one more makes him.
    assert [(c.label, c.reason) for c in r.observe(1, "bob", 0.6)] == [("bob", "votes")]


def test_removing_the_holder_lets_a_contender_claim_the_name() -> None:
    r = IdentityResolver(min_votes=2, min_confidence=0.5)
    for _ in range(3):
        r.observe(1, "ana", 0.9)
    for _ in range(2):
        r.observe(2, "ana", 0.6)
    assert r.label_of(2) == UNKNOWN
    changes = r.remove(1)
    assert [(c.track_id, c.label) for c in changes] == [(2, "ana")]
    assert r.holders() == {"ana": 2}
    assert r.retain([]) == [] and r.holders() == {}


# ---------------------------------------------------------------------------------------------
# face -> person binding


def test_face_binds_to_the_box_that_contains_it() -> None:
    persons = [BBox(0, 0, 100, 300), BBox(200, 0, 300, 300)]
    faces = [BBox(230, 10, 270, 50), BBox(30, 10, 70, 50)]
    got = {(b.face_index, b.person_index) for b in bind_faces(faces, persons)}
    assert got == {(0, 1), (1, 0)}


def test_face_outside_every_person_is_not_bound() -> None:
    assert bind_faces([BBox(500, 500, 540, 540)], [BBox(0, 0, 100, 300)]) == []
    # Mostly outside (share 0.25) is someone else's face too.
    assert bind_faces([BBox(80, 10, 160, 50)], [BBox(0, 0, 100, 300)]) == []


def test_overlapping_people_face_goes_to_the_box_where_a_head_would_be() -> None:
    front = BBox(100, 100, 220, 400)  # someone nearer the camera, head at the top of this box
    behind = BBox(60, 0, 260, 500)  # a larger box that also contains that face
    face = BBox(140, 105, 180, 145)
    (binding,) = bind_faces([face], [behind, front])
    assert binding.person_index == 1


def test_one_face_per_person() -> None:
    person = [BBox(0, 0, 200, 400)]
    faces = [BBox(80, 10, 120, 50), BBox(10, 300, 30, 320)]
    bindings = bind_faces(faces, person)
    assert [(b.face_index, b.person_index) for b in bindings] == [(0, 0)]


# ---------------------------------------------------------------------------------------------
# event building


@dataclass
class _View:
    track_id: int
    tlwh: tuple[float, float, float, float]
    detection_index: int | None = 0


@dataclass
class _Life:
    kind: str
    track_id: int
    tlwh: tuple[float, float, float, float]


T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _stamp(i: int) -> FrameStamp:
    return FrameStamp(index=i, ts=T0 + timedelta(seconds=i / 10))


def test_track_lifecycle_events() -> None:
    b = EventBuilder("dev1")
    box = (10.0, 20.0, 30.0, 60.0)
    for i in range(3):
        b.observe([_View(7, box)], _stamp(i))
    # Identity settled while tentative is held back until track_started.
    assert b.identity(IdentityChange(7, "ana", 0.8, 3, None), _stamp(2)) == []
    started = b.lifecycle(_Life("confirmed", 7, box), _stamp(2))
    assert isinstance(started[0], TrackStarted) and started[0].bbox == [10.0, 20.0, 40.0, 80.0]
    assert isinstance(started[1], IdentityEvent) and started[1].label == "ana"
    b.observe([_View(7, box, None)], _stamp(3))  # a frame without a match: not "seen"
    b.observe([_View(7, box)], _stamp(4))
    assert b.lifecycle(_Life("lost", 7, box), _stamp(5)) == []
    (ended,) = b.lifecycle(_Life("deleted", 7, box), _stamp(9))
    assert isinstance(ended, TrackEnded)
    assert ended.label == "ana" and ended.frames == 4
    assert ended.first_seen == _stamp(0).ts and ended.last_seen == _stamp(4).ts
    assert abs(ended.duration_s - 0.4) < 1e-9
    # Every event is a valid contract payload.
    for event in [*started, ended]:
        assert parse_event(event.model_dump_json()) == event


def test_tentative_track_that_dies_is_never_announced() -> None:
    b = EventBuilder("dev1")
    b.observe([_View(3, (0, 0, 1, 1))], _stamp(0))
    assert b.lifecycle(_Life("deleted", 3, (0, 0, 1, 1)), _stamp(1)) == []
    assert b.live_track_ids == []


def test_identity_change_to_unknown_and_end_of_input() -> None:
    b = EventBuilder("dev1")
    box = (0.0, 0.0, 10.0, 10.0)
    b.observe([_View(1, box), _View(2, box)], _stamp(0))
    b.lifecycle(_Life("confirmed", 1, box), _stamp(0))
    b.lifecycle(_Life("confirmed", 2, box), _stamp(0))
    (named,) = b.identity(IdentityChange(1, "ana", 0.9, 3, None), _stamp(1))
    assert isinstance(named, IdentityEvent) and named.previous_label is None
    (lost,) = b.identity(IdentityChange(1, UNKNOWN, 0.0, 0, "ana"), _stamp(2))
    assert isinstance(lost, IdentityEvent) and lost.label == UNKNOWN and lost.previous_label == "ana"
    # Unknown -> unknown is not news.
    assert b.identity(IdentityChange(2, UNKNOWN, 0.0, 0, None), _stamp(2)) == []
    ended = b.end_all(_stamp(3))
    assert [(e.track_id, e.label) for e in ended if isinstance(e, TrackEnded)] == [(1, None), (2, None)]
    assert b.live_track_ids == []


def test_sweep_closes_tracks_the_tracker_dropped_silently() -> None:
    b = EventBuilder("dev1")
    box = (0.0, 0.0, 10.0, 10.0)
    b.observe([_View(1, box), _View(2, box)], _stamp(0))
    b.lifecycle(_Life("confirmed", 1, box), _stamp(0))
    ended = b.sweep([2], _stamp(1))
    assert [e.track_id for e in ended if isinstance(e, TrackEnded)] == [1]
    assert b.live_track_ids == [2]


def test_loser_cannot_trade_the_name_back_while_the_holder_lives() -> None:
    r = IdentityResolver(min_votes=2, min_confidence=0.5)
    r.observe(1, "ana", 0.6)
    r.observe(1, "ana", 0.6)
    for _ in range(3):
        r.observe(2, "ana", 0.95)
    assert r.holders() == {"ana": 2}
    # Track 1 keeps voting and its sum overtakes track 2's: it still does not take the name back.
    changes: list[IdentityChange] = []
    for _ in range(6):
        changes += r.observe(1, "ana", 0.9)
    assert changes == [] and r.holders() == {"ana": 2}
    # Once the holder is gone, the name is free again.
    assert [(c.track_id, c.label) for c in r.remove(2)] == [(1, "ana")]


def test_stranger_after_many_unknown_faces_and_only_then() -> None:
    r = IdentityResolver(min_votes=2, min_confidence=0.5)
    for _ in range(5):
        r.observe(1, UNKNOWN, 0.1)
    assert not r.is_stranger(1)
    r.observe(1, UNKNOWN, 0.1)
    assert r.is_stranger(1)  # 3 x min_votes unknown faces, no recognised one
    for _ in range(6):
        r.observe(2, UNKNOWN, 0.1)
    r.observe(2, "ana", 0.9)  # one recognition: still worth looking at every frame
    assert not r.is_stranger(2) and not r.is_stranger(99)
