"""Labels with a fixed meaning across the trainer, the classifier and identity voting.

Kept apart from classifier.py (which imports skops and scikit-learn) so the agent's identity
logic can use them without paying for those imports before the input is even opened.
"""

UNKNOWN = "unknown"
# Class name of the people trained from --negatives: never reported, always "unknown".
REJECTED_CLASS = "__rejected__"
RESERVED_LABELS = frozenset({UNKNOWN, REJECTED_CLASS})
