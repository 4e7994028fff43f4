"""Deep SORT person tracker: Kalman motion, appearance cascade, IoU fallback, lifecycle events."""

from agent.tracking.appearance import AppearanceEncoder, ColorHistogramEncoder
from agent.tracking.detection import filter_detections, non_max_suppression
from agent.tracking.lifecycle import EventKind, TrackEvent, TrackStateName, TrackUpdate, TrackView
from agent.tracking.params import TrackerParams
from agent.tracking.tracker import Tracker

__all__ = [
    "AppearanceEncoder",
    "ColorHistogramEncoder",
    "EventKind",
    "TrackEvent",
    "TrackStateName",
    "TrackUpdate",
    "TrackView",
    "Tracker",
    "TrackerParams",
    "filter_detections",
    "non_max_suppression",
]
