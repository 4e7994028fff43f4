"""One frame through the agent: detect -> appearance -> faces -> embed -> classify -> track -> identity
-> events. Pure: frames in, events out; no I/O (the runtime reads the frames and sends the events).

Split in two halves so the app can overlap them across frames:
- `analyzer.FrameAnalyzer.analyze` runs the models (in the inference executor; TFLite interpreters
  are not thread-safe, so one analyzer is used by one worker at a time);
- `stage.TrackingStage.step` runs the tracker, identity voting and event building (on the event
  loop; pure Python and NumPy).
"""
