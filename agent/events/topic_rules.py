"""What may be spliced into an MQTT topic name: the rule shared by the topic layout and the config.

The layout itself (which leaf under which device) is spelled once, in `agent.runtime.topics`; this
rule lives in the pure core so that validating a setting (`agent.config`) needs nothing from the
runtime.
"""

from __future__ import annotations


def check_topic_part(value: str, *, one_level: bool = False) -> str:
    """Return `value` if it can be spliced into a topic name, else ValueError with the rule.

    A prefix may span levels ("site/facetrack"); a device id (`one_level`) may not.
    """
    if not value or any(c in value for c in "#+\0") or value.startswith("/") or value.endswith("/"):
        raise ValueError("must be non-empty, without '#', '+' or an edge '/'")
    if one_level and "/" in value:
        raise ValueError("must be one topic level (no '/')")
    return value
