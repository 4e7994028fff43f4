"""The MQTT event contract (what subscribers of facetrack/<device>/events receive) and the pure
builder that turns tracker and identity changes into those events."""
