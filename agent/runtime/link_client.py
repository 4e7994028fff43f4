"""The MQTT client of one connection attempt of the agent's link, built from `[mqtt]`.

Built afresh per attempt (and per broker of a cluster list), so a renewed client certificate or
password file is used on the next reconnect.
"""

from __future__ import annotations

import logging

import aiomqtt
import paho.mqtt.client as paho_mqtt

from agent.broker_address import BrokerAddress
from agent.config import MqttConfig
from agent.runtime.credentials import resolve_login, tls_context
from agent.runtime.mqtt_client import MqttClient
from agent.runtime.mqtt_limits import connect_properties


def _quiet(message: str) -> None:
    del message


def link_client(
    cfg: MqttConfig,
    address: BrokerAddress,
    *,
    client_id: str,
    will: aiomqtt.Will,
    window: int,
    max_bundle_bytes: int,
    logger: logging.Logger,
) -> tuple[MqttClient, bool]:
    """The client, and whether a password was dropped for want of a user name."""
    # The file's permissions were checked (and warned about) once, when the link was made.
    login = resolve_login(cfg, warn=_quiet)
    v5 = cfg.protocol == "5"
    client = MqttClient(
        address.host,
        address.port,
        identifier=client_id,
        username=login.username,
        password=login.password.reveal() if login.password is not None else None,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        will=will,
        clean_session=None if v5 else True,
        # paho rejects any clean_start other than its default on MQTT 3.1.1.
        clean_start=True if v5 else paho_mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        keepalive=cfg.keepalive_s,
        timeout=max(10.0, float(cfg.keepalive_s)),
        max_inflight_messages=max(20, window),
        # MQTT 5: the broker never sends a model larger than we take (see mqtt_limits).
        properties=connect_properties(max_bundle_bytes) if v5 else None,
        # Built per connection attempt, so a renewed client certificate is used on reconnect.
        tls_context=tls_context(cfg),
        logger=logger,
    )
    # A full window of in-flight publishes is our design, not the warning sign aiomqtt assumes.
    client.pending_calls_threshold = window + 10
    return client, login.password_dropped
