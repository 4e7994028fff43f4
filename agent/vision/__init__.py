"""Vision stage: TFLite person detection, face detection and face embedding."""
