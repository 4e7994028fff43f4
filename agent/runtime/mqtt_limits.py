"""How big an MQTT message the agent takes: models are the only large ones, and a model message is
held whole in memory (about three copies while it is verified), so its size is bounded before it
is read wherever the protocol allows.

- MQTT 5: the agent announces a Maximum Packet Size on CONNECT; the broker then never sends it a
  larger packet (it drops it, as the specification requires, and the agent cannot tell).
- MQTT 3.1.1 has no such property: a larger model message is refused on arrival (`model_rejected`,
  code `too_large`, one log line), and the shipped broker config's `max_packet_size` keeps it from
  being accepted from a publisher in the first place.
"""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# Room beside the bundle for the fixed header, the topic and properties of a PUBLISH.
PACKET_OVERHEAD_BYTES = 64 * 1024


def max_packet_bytes(max_bundle_bytes: int) -> int:
    """The largest packet the agent accepts: the largest model message plus a PUBLISH's headers."""
    return max_bundle_bytes + PACKET_OVERHEAD_BYTES


def connect_properties(max_bundle_bytes: int) -> Properties:
    """CONNECT properties of an MQTT 5 session: the Maximum Packet Size."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.MaximumPacketSize = max_packet_bytes(max_bundle_bytes)
    return properties
