"""The MQTT event contract: what subscribers of facetrack/<device>/events receive."""
