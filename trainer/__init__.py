"""facetrack trainer: build, sign and publish face classifiers for the agent fleet."""
