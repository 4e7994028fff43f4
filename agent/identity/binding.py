"""Which person box a detected face belongs to. Pure: boxes in, assignment out.

A face belongs to the person box that contains the largest share of it. People overlap (a crowd,
someone walking behind someone else), so a face can lie fully inside two person boxes; the tie is
broken by where a head sits in a standing person's box: near the top centre. Each person gets at
most one face and each face at most one person, assigned greedily from the most convincing pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.vision.types import BBox

# A face that sticks out of a person box by more than half is someone else's (or a false face).
DEFAULT_MIN_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class FaceBinding:
    face_index: int
    person_index: int
    share: float


def _head_distance(face: BBox, person: BBox) -> float:
    """Distance of the face centre from where a head would be, in person-box heights."""
    fx = (face.x1 + face.x2) / 2.0
    fy = (face.y1 + face.y2) / 2.0
    head_x = (person.x1 + person.x2) / 2.0
    # A head's centre sits about a tenth of the body height below the top of the box.
    head_y = person.y1 + 0.1 * person.height
    scale = max(person.height, 1.0)
    return float(((fx - head_x) ** 2 + (fy - head_y) ** 2) ** 0.5 / scale)


def bind_faces(
    faces: Sequence[BBox],
    persons: Sequence[BBox],
    min_share: float = DEFAULT_MIN_SHARE,
) -> list[FaceBinding]:
    """Assign faces to person boxes, one to one; returns bindings sorted by face index."""
    candidates: list[tuple[float, float, int, int]] = []
    for fi, face in enumerate(faces):
        if face.area <= 0:
            continue
        for pi, person in enumerate(persons):
            share = face.intersection_over_self(person)
            if share >= min_share:
                # Shares are rounded so that "both fully inside" counts as a tie for the head rule.
                candidates.append((round(share, 3), -_head_distance(face, person), fi, pi))
    candidates.sort(reverse=True)
    used_faces: set[int] = set()
    used_persons: set[int] = set()
    bindings: list[FaceBinding] = []
    for share, _, fi, pi in candidates:
        if fi in used_faces or pi in used_persons:
            continue
        used_faces.add(fi)
        used_persons.add(pi)
        bindings.append(FaceBinding(face_index=fi, person_index=pi, share=share))
    bindings.sort(key=lambda b: b.face_index)
    return bindings
