"""One FrameAnalyzer per inference worker: TFLite interpreters are not thread-safe, so a worker
borrows an analyzer (with its own interpreters) for one frame and gives it back."""

from __future__ import annotations

import queue

from agent.pipeline.analyzer import Analysis, ClassifierLike, FrameAnalyzer, TrackHint
from agent.pipeline.frame import SourceFrame


class AnalyzerPool:
    def __init__(self, analyzers: list[FrameAnalyzer]) -> None:
        self._free: queue.SimpleQueue[FrameAnalyzer] = queue.SimpleQueue()
        for analyzer in analyzers:
            self._free.put(analyzer)
        self.size = len(analyzers)

    def analyze(self, frame: SourceFrame, hints: list[TrackHint], clf: ClassifierLike | None) -> Analysis:
        analyzer = self._free.get()
        try:
            return analyzer.analyze(frame, hints, clf)
        finally:
            self._free.put(analyzer)
