"""The grouping rule's two numbers, chosen on held-out people.

`python -m bench.cluster` picks them on the shared face sets, leaving whole people out
(docs/enrolment.md#how-the-grouping-rule-was-chosen). A module of its own so that the CLI can show
them in `--help` without importing SciPy.
"""

# Cosine distance (1 - cosine similarity) at which average linkage stops merging (bench/cluster.py).
DEFAULT_DISTANCE = 0.48
# Faces whose box is shorter than this (pixels) are not grouped but listed as ungrouped; faces the
# agent's own gate rejects (detection.face_min_height, face_min_sharpness, face_max_turn) never are.
# The agent's 20 px: a higher gate found no more pairs held out than the stricter cut alone.
DEFAULT_MIN_HEIGHT = 20.0
