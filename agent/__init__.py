"""facetrack edge agent: detect, recognise and track people, report over MQTT."""

__version__ = "0.1.0"
