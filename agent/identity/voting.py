"""Who each person track is, decided by confidence-weighted votes over the frames a face was seen.

Pure: classifier predictions in, identity changes out; no I/O and no clock.

Rules (issue 4):
- Every classified face is a vote for its track. A prediction at or above `min_confidence` votes
  for its label with weight = confidence; anything else (the classifier's "unknown", or a weak
  guess) votes for "unknown" with weight = 1 - confidence, the chance it is not the guessed person.
- A track is announced as a person once that label leads the weighted tally and has at least
  `min_votes` votes. It reverts to "unknown" if unknown evidence later outweighs it.
- One live track per identity: when a second track qualifies for a label someone already holds,
  the stronger claim (larger summed confidence) keeps it and the other track goes back to unknown,
  with an identity change for both. A track that lost a label cannot reclaim it while the
  holder lives, but may qualify for its next-best label.

A name follows the face, not the box (issue 22): a named track whose new face votes for anything
but its name (another person, or "unknown") loses the name at once, before that face is counted,
and its earlier votes are forgotten: they were cast for whoever the box held then, and a box can
slide onto somebody else (a crowd, a missed cut). The name comes back only after `min_votes` new
faces agree again. Only faces that passed the quality gate reach the resolver, so a turned or
blurred face cannot withdraw a name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from agent.classifier.labels import UNKNOWN

# Why an identity changed: the track's votes decided; its newest face disagreed with its name
# (withdrawn at once); or a stronger track claimed the name.
ChangeReason = Literal["votes", "face_disagrees", "claimed"]


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """A track's announced identity changed (first established, taken over, or lost)."""

    track_id: int
    label: str
    confidence: float
    votes: int
    previous_label: str | None
    reason: ChangeReason = "votes"


@dataclass(slots=True)
class _Tally:
    weight: float = 0.0
    votes: int = 0


@dataclass(slots=True)
class _TrackVotes:
    tallies: dict[str, _Tally] = field(default_factory=dict)
    announced: str = UNKNOWN
    # The label shown to subscribers so far; None until the first identity change is emitted.
    emitted: str | None = None
    # Labels taken from this track by a stronger claim: not reclaimable while that holder lives,
    # or two tracks voting in turn would trade the name back and forth every frame.
    lost: set[str] = field(default_factory=set)

    def add(self, label: str, weight: float) -> None:
        tally = self.tallies.setdefault(label, _Tally())
        tally.weight += weight
        tally.votes += 1

    def strength(self, label: str) -> float:
        tally = self.tallies.get(label)
        return tally.weight if tally else 0.0


class IdentityResolver:
    def __init__(self, min_votes: int = 3, min_confidence: float = 0.5) -> None:
        if min_votes < 1:
            raise ValueError("min_votes must be >= 1")
        self.min_votes = min_votes
        self.min_confidence = min_confidence
        self._tracks: dict[int, _TrackVotes] = {}
        self._holders: dict[str, int] = {}

    # -- queries ---------------------------------------------------------------------------------
    def label_of(self, track_id: int) -> str:
        state = self._tracks.get(track_id)
        return state.announced if state else UNKNOWN

    def is_identified(self, track_id: int) -> bool:
        return self.label_of(track_id) != UNKNOWN

    def votes_of(self, track_id: int) -> int:
        state = self._tracks.get(track_id)
        return sum(t.votes for t in state.tallies.values()) if state else 0

    def is_stranger(self, track_id: int) -> bool:
        """Seen clearly enough, often enough, and never recognised: 3 x min_votes faces, all
        "unknown". The pipeline then re-checks such a track only periodically, like a named one,
        instead of running the face models for a passer-by on every frame."""
        state = self._tracks.get(track_id)
        if state is None or state.announced != UNKNOWN:
            return False
        unknown = state.tallies.get(UNKNOWN)
        known = sum(t.votes for label, t in state.tallies.items() if label != UNKNOWN)
        return known == 0 and unknown is not None and unknown.votes >= 3 * self.min_votes

    def holders(self) -> dict[str, int]:
        return dict(self._holders)

    # -- updates ---------------------------------------------------------------------------------
    def observe(self, track_id: int, label: str, confidence: float) -> list[IdentityChange]:
        """Add one classified face for a track; returns the identity changes it caused."""
        confidence = min(max(float(confidence), 0.0), 1.0)
        state = self._tracks.setdefault(track_id, _TrackVotes())
        vote = label if label != UNKNOWN and confidence >= self.min_confidence else UNKNOWN
        changes: list[IdentityChange] = []
        if state.announced != UNKNOWN and vote != state.announced:
            changes.extend(self._withdraw(track_id))
        if vote != UNKNOWN:
            state.add(vote, confidence)
        else:
            state.add(UNKNOWN, 1.0 - confidence)
        changes.extend(self._reevaluate(track_id))
        return changes

    def remove(self, track_id: int) -> list[IdentityChange]:
        """Forget a deleted track; a track that lost its label to it may now qualify again."""
        state = self._tracks.pop(track_id, None)
        if state is None:
            return []
        return self._release(state.announced, track_id)

    def retain(self, live_track_ids: Iterable[int]) -> list[IdentityChange]:
        """Drop every track not in `live_track_ids` (the tracker deleted them)."""
        live = set(live_track_ids)
        changes: list[IdentityChange] = []
        for tid in [t for t in self._tracks if t not in live]:
            changes.extend(self.remove(tid))
        return changes

    # -- internals -------------------------------------------------------------------------------
    def _withdraw(self, track_id: int) -> list[IdentityChange]:
        """A face disagreed with the track's name: the name goes now, with the votes behind it."""
        state = self._tracks[track_id]
        withdrawn = state.announced
        votes = sum(t.votes for t in state.tallies.values())
        state.tallies.clear()
        state.announced = UNKNOWN
        previous, state.emitted = state.emitted, UNKNOWN
        change = IdentityChange(track_id, UNKNOWN, 0.0, votes, previous, "face_disagrees")
        return [change, *self._release(withdrawn, track_id)]

    def _release(self, label: str, track_id: int) -> list[IdentityChange]:
        """`track_id` no longer holds `label`: a track that lost it to this one may now qualify."""
        if label == UNKNOWN or self._holders.get(label) != track_id:
            return []
        del self._holders[label]
        for other in self._tracks.values():
            other.lost.discard(label)
        changes: list[IdentityChange] = []
        # The strongest remaining contender for the released label gets its chance first.
        contenders = sorted(
            (tid for tid, s in self._tracks.items() if tid != track_id and s.strength(label) > 0),
            key=lambda tid: -self._tracks[tid].strength(label),
        )
        for tid in contenders:
            changes.extend(self._reevaluate(tid))
        return changes

    def _candidate(self, track_id: int) -> str:
        """The label this track qualifies for on its own votes, ignoring other tracks."""
        state = self._tracks[track_id]
        ranked = sorted(state.tallies.items(), key=lambda kv: -kv[1].weight)
        unknown_weight = state.strength(UNKNOWN)
        for label, tally in ranked:
            if label == UNKNOWN:
                return UNKNOWN
            if tally.votes < self.min_votes or tally.weight <= unknown_weight:
                continue
            holder = self._holders.get(label)
            if holder is None or holder == track_id:
                return label
            if label not in state.lost and tally.weight > self._tracks[holder].strength(label):
                return label
            # Held by a stronger live track: this track may still be someone else.
        return UNKNOWN

    def _reevaluate(self, track_id: int) -> list[IdentityChange]:
        state = self._tracks[track_id]
        new = self._candidate(track_id)
        old = state.announced
        if new == old:
            return []
        changes: list[IdentityChange] = []
        loser: int | None = None
        if old != UNKNOWN and self._holders.get(old) == track_id:
            del self._holders[old]
        if new != UNKNOWN:
            loser = self._holders.get(new)
            if loser is not None and loser != track_id:
                loser_state = self._tracks[loser]
                loser_state.announced = UNKNOWN
                loser_state.lost.add(new)
                changes.append(self._change(loser, loser_state, UNKNOWN, "claimed"))
            self._holders[new] = track_id
        state.announced = new
        changes.append(self._change(track_id, state, new))
        if new != UNKNOWN and loser is not None and loser != track_id:
            # The loser may still qualify for its next-best label.
            changes.extend(self._reevaluate(loser))
        return changes

    def _change(
        self, track_id: int, state: _TrackVotes, label: str, reason: ChangeReason = "votes"
    ) -> IdentityChange:
        if label == UNKNOWN:
            # "No name" carries no confidence; votes says how much evidence the track has had.
            previous = state.emitted
            state.emitted = label
            votes = sum(t.votes for t in state.tallies.values())
            return IdentityChange(track_id, UNKNOWN, 0.0, votes, previous, reason)
        tally = state.tallies.get(label, _Tally())
        confidence = tally.weight / tally.votes if tally.votes else 0.0
        previous = state.emitted
        state.emitted = label
        return IdentityChange(
            track_id=track_id,
            label=label,
            confidence=round(min(max(confidence, 0.0), 1.0), 4),
            votes=tally.votes,
            previous_label=previous,
        )
