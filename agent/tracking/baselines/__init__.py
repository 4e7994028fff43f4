"""Reference trackers written from their papers, kept for side-by-side benchmarks.

Not used by the agent: the agent runs `agent.tracking.Tracker`. `Sort` is SORT (Bewley et al. 2016)
as published, so bench/mot.py can compare against the original on the same detections.
"""

from agent.tracking.baselines.sort import Sort, SortParams
from agent.tracking.baselines.sort_kalman import SortKalmanFilter

__all__ = ["Sort", "SortKalmanFilter", "SortParams"]
