"""The grouping rule's two numbers, chosen on held-out people.

`python -m bench.cluster` picks them on the shared face sets, leaving whole people out
(docs/enrolment.md#how-the-grouping-rule-was-chosen). A module of its own so that the CLI can show
them in `--help` without importing SciPy.
"""

# Cosine distance (1 - cosine similarity) at which average linkage stops merging. bench/cluster.py
# finds every cut from 0.48 to 0.60 equally right on the labelled photos (gate 40 px) and picks the
# middle, 0.54; the default is one step more lenient because faces cut from video are blurrier than
# photos: at 0.54 the hamilton clip's two tracks of Lin-Manuel Miranda form two groups, at 0.56 one
# (tests/test_enrolment_roundtrip.py).
DEFAULT_DISTANCE = 0.56
# Faces whose box is shorter than this (pixels) are not grouped but listed as ungrouped, like faces
# the agent's own gate rejects (detection.face_min_height, face_min_sharpness, face_max_turn). On
# the shared sets the only wrong pairs between labelled faces joined two faces under 48 px.
DEFAULT_MIN_HEIGHT = 40.0
