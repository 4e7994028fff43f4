"""The cut at which `cluster` stops merging groups, chosen on held-out people.

`python -m bench.cluster` picks it on the shared face sets, leaving whole people out
(docs/enrolment.md#how-the-grouping-rule-was-chosen). A module of its own so that the CLI can show
it in `--help` without importing SciPy.
"""

# Cosine distance (1 - cosine similarity) at which average linkage stops merging (bench/cluster.py).
DEFAULT_DISTANCE = 0.56
