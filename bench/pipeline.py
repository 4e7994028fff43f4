"""The agent's pipeline against the seed's original loop and a sequential loop, on the same models,
in one run, with the agent's honest bound and every mode's memory.

    python -m bench.pipeline [--json] [--frames N] [--videos NAME ...] [--repeat K] [--memory-frames N]

For each video (vtest.avi: pedestrians, 768x576; hamilton_clip.mp4: one face on stage, 640x360) the
modes below run interleaved, round by round (order rotated), and the median round is kept:

- agent:        the real AgentApp in its default layout (config.inference: workers x TFLite threads):
                decode thread -> inference executor (several frames in flight) -> tracking, identity
                and events on the event loop -> SQLite outbox -> a private mosquitto; a trained
                classifier. Faces are looked at only for people not yet named (and rechecked every
                pipeline.face_recheck_every frames); the detection schedule of [detection].
- agent_1x2:    the same app with one worker whose interpreters use 2 threads (one frame at a time).
- sequential:   the agent's stages (FrameAnalyzer with the agent's detection schedule + TrackingStage,
                the same face schedule) one frame at a time in one thread, 2-thread interpreters:
                the agent without any overlap.
- original:     the seed script's loop as it was: person detection (and the tracker update) on every
                3rd frame; face detection on the whole frame, embedding and classification of every
                face on every frame; one frame at a time in one thread, 2-thread interpreters. Same
                models and classifier as the agent, so only the loop's design differs.

The honest bound: the agent's inference workers measure their own CPU time inside the models
(detectors, embedder, classifier; `time.thread_time`, the interpreters run inline with one thread
each) for every frame the agent processed. Divided by the frames and by the cores the agent uses
(min(usable cores, workers x threads)), it is the shortest wall time per frame that run could have
reached if decoding, motion, tracking and I/O cost nothing. The agent cannot beat it; a share above
1.0 means the bound is wrong, and the report says so. It comes from the same run it bounds.

CPU per frame: every mode also reports its process CPU (user + sys, every thread) per frame over
the frames its fps is taken on, the seed loop's divided by the agent's (median of per-round
ratios), and the models' part of the agent's CPU. Other jobs on the machine move these far less
than the fps; bench/pipeline_cpu.py splits the CPU item by item.

Memory: after the rounds, `facetrack-agent run` runs as a child process with default settings on
each video and on a 1080p clip (vtest upscaled to 1920x1080 with OpenCV, written to a temporary
file: the assets have no 1080p clip), without and with a classifier installed, and in the 1x2
layout; its peak RSS is the child's ru_maxrss (os.wait4). The seed loop's peak RSS is measured the
same way (`python -m bench.pipeline --seed-child`).

The per-round ratios hold on a busy machine too (the load average is printed).
Logs go to stderr; with --json stdout carries the JSON document alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from agent.config import AgentConfig, load_config
from agent.events.clock import FrameStamp
from agent.identity.binding import bind_faces
from agent.pipeline.analyzer import ClassifierLike, DetectionOptions, FrameAnalyzer
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.runtime.blas_threads import limit_blas_threads
from agent.tracking import ColorHistogramEncoder, Tracker, TrackerParams
from agent.vision.factory import VisionStack, build_vision_stack
from agent.vision.types import BBox
from bench.agent_config import for_video
from bench.machine import BenchRun, usable_cores
from bench.mot import FrameOutput

VIDEOS = {"vtest": "data/video/vtest.avi", "hamilton": "data/video/hamilton_clip.mp4"}
MODEL_STAGES = ("person_ms", "face_ms", "embed_ms", "classify_ms")
# The seed script ran the person detector on every 3rd frame only.
ORIGINAL_DETECT_EVERY = 3
SINGLE_WORKER_MODE = "agent_1x2"
MODES = ("agent", SINGLE_WORKER_MODE, "sequential", "original")
DESCRIPTIONS = {
    "agent": "real AgentApp, default layout {layout}: frames overlap in the executor; faces only for "
    "unnamed people (+ rechecks); events -> outbox -> mosquitto",
    SINGLE_WORKER_MODE: "real AgentApp, 1 worker x 2 TFLite threads: one frame at a time, otherwise as agent",
    "sequential": "agent's stages one frame at a time in one thread (1x2), same detection and face "
    "schedule, no overlap",
    "original": "seed loop: persons + tracker every 3rd frame; faces detected, embedded and classified "
    "for every face on every frame; one thread, one frame at a time (1x2)",
}

T = TypeVar("T")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _process_cpu_s() -> float:
    """User + system CPU seconds of this process so far, every thread (decode, workers, TFLite's)."""
    t = os.times()
    return t.user + t.system


class CpuSpan:
    """Process CPU between the first and the last frame done: the same span the fps is taken over,
    so CPU per frame and fps describe the same frames. Other jobs on the machine do not add to it."""

    def __init__(self) -> None:
        self.frames = 0
        self._first = self._last = 0.0

    def frame_done(self, *_: Any) -> None:
        now = _process_cpu_s()
        if self.frames == 0:
            self._first = now
        self._last = now
        self.frames += 1

    def ms_per_frame(self) -> float:
        return round((self._last - self._first) * 1000 / (self.frames - 1), 2) if self.frames > 1 else 0.0


class StageClock:
    """Wall and process-CPU milliseconds per named stage, per frame."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu_ms = 0.0

    def time(self, name: str, call: Callable[..., T], *args: Any, model: bool = True) -> T:
        c0, t0 = time.process_time(), time.perf_counter()
        out = call(*args)
        t1, c1 = time.perf_counter(), time.process_time()
        self.wall.setdefault(name, []).append((t1 - t0) * 1000)
        if model:
            self.cpu_ms += (c1 - c0) * 1000
        return out

    def add(self, timings: dict[str, float]) -> None:
        for name, value in timings.items():
            self.wall.setdefault(name, []).append(value)


class CpuMeter:
    """Process CPU milliseconds spent inside wrapped model calls (all threads: TFLite's too)."""

    def __init__(self) -> None:
        self.cpu_ms = 0.0

    def wrap(self, inner: Any, method: str) -> Any:
        return _Metered(inner, method, self)


class _Metered:
    """`inner` with `method` timed by a CpuMeter; every other attribute is the inner object's."""

    def __init__(self, inner: Any, method: str, meter: CpuMeter) -> None:
        self._inner, self._method, self._meter = inner, method, meter

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name != self._method:
            return target

        def metered(*args: Any, **kwargs: Any) -> Any:
            c0 = time.process_time()
            try:
                return target(*args, **kwargs)
            finally:
                self._meter.cpu_ms += (time.process_time() - c0) * 1000

        return metered


def _result(
    clock: StageClock,
    done: int,
    span: float,
    events: int | None,
    faces: int,
    cpu_ms: float,
    process: CpuSpan,
) -> dict[str, Any]:
    stages = clock.wall
    return {
        "frames": done,
        "fps": round((done - 1) / span, 2) if span > 0 else 0.0,
        "events": events,
        "faces_classified": faces,
        "latency_ms": {k: round(_mean(v), 2) for k, v in sorted(stages.items())},
        # Per-frame averages, including frames on which a model did not run.
        "model_ms_per_frame": round(sum(sum(stages.get(k, [])) for k in MODEL_STAGES) / max(done, 1), 2),
        "model_cpu_ms_per_frame": round(cpu_ms / max(done, 1), 2),
        "cpu_ms_per_frame": process.ms_per_frame(),
    }


def _read(capture: cv2.VideoCapture, clock: StageClock) -> np.ndarray | None:
    t0 = time.perf_counter()
    ok, image = capture.read()
    clock.wall.setdefault("read_ms", []).append((time.perf_counter() - t0) * 1000)
    return np.asarray(image, dtype=np.uint8) if ok else None


def run_sequential(
    config: AgentConfig,
    stack: VisionStack,
    clf: ClassifierLike | None,
    video: Path,
    frames: int,
    outputs: list[FrameOutput] | None = None,
) -> dict[str, Any]:
    """The agent's own stages, one frame at a time in this thread (no overlap, no outbox), with the
    agent's detection schedule (motion, regions, coasting) from `config`. `outputs`, when given,
    gets each frame's shown tracks (confirmed, matched on the frame), as bench/mot.py scores them."""
    meter = CpuMeter()
    crop = stack.crop_face_detector
    analyzer = FrameAnalyzer(
        meter.wrap(stack.person_detector, "detect"),
        meter.wrap(stack.face_detector, "detect"),
        meter.wrap(stack.embedder, "embed"),
        ColorHistogramEncoder(),
        DetectionOptions.from_config(config.detection, _input_side(stack)),
        meter.wrap(crop, "detect") if crop is not None else None,
    )
    metered_clf = meter.wrap(clf, "predict") if clf is not None else None
    stage = TrackingStage.from_config(config)
    capture = cv2.VideoCapture(str(video))
    clock = StageClock()
    process = CpuSpan()
    done = events = faces = passes = 0
    first_done = last_done = 0.0
    while done < frames:
        image = _read(capture, clock)
        if image is None:
            break
        frame = SourceFrame(done, image, datetime.now(UTC), time.monotonic())
        analysis = analyzer.analyze(frame, stage.hints(done), metered_clf)
        result = stage.step(analysis, FrameStamp(done, datetime.now(UTC)))
        passes += analysis.person_passes
        if outputs is not None:
            shown = [t for t in result.tracks if t.is_confirmed and t.time_since_update == 0]
            outputs.append(([t.track_id for t in shown], _boxes([t.tlwh for t in shown])))
        events += len(result.events)
        faces += len(analysis.predictions)
        clock.add({**analysis.timings_ms, **result.timings_ms})
        process.frame_done()
        last_done = time.perf_counter()
        if done == 0:
            first_done = last_done
        done += 1
    capture.release()
    events += len(stage.finish(FrameStamp(done, datetime.now(UTC))))
    result = _result(clock, done, last_done - first_done, events, faces, meter.cpu_ms, process)
    result["person_passes_per_frame"] = round(passes / max(done, 1), 3)
    return result


def run_original(
    config: AgentConfig,
    stack: VisionStack,
    clf: ClassifierLike | None,
    video: Path,
    frames: int,
    outputs: list[FrameOutput] | None = None,
) -> dict[str, Any]:
    """The seed script's loop: persons every 3rd frame, every face on every frame, one at a time.

    Written against the models directly (not FrameAnalyzer), so nothing of the agent's design
    (face schedule, overlap) leaks in. Each face is bound to the tracked person whose head it is
    in, as the seed labelled tracks; events are not built (the seed had no event stream).
    `outputs` gets each frame's shown tracks: those of the last tracker update (the seed drew the
    tracker's boxes and did not move them between updates).
    """
    person, face_detector, embedder = stack.person_detector, stack.face_detector, stack.embedder
    appearance = ColorHistogramEncoder()
    tracker = Tracker(TrackerParams.from_config(config.tracker, config.detection))
    capture = cv2.VideoCapture(str(video))
    clock = StageClock()
    process = CpuSpan()
    done = faces_classified = 0
    first_done = last_done = 0.0
    tracks: list[BBox] = []
    track_ids: list[int] = []
    labels: dict[int, str] = {}
    shown: FrameOutput = ([], _boxes([]))
    while done < frames:
        image = _read(capture, clock)
        if image is None:
            break
        if done % ORIGINAL_DETECT_EVERY == 0:
            detections = clock.time("person_ms", person.detect, image)
            n = len(detections)
            boxes = np.array([d.box.tlwh() for d in detections], dtype=np.float64).reshape(n, 4)
            scores = np.array([d.score for d in detections], dtype=np.float64)

            features = (
                clock.time("appearance_ms", appearance.encode, image, boxes, model=False) if n else None
            )
            update = clock.time("track_ms", tracker.update, boxes, scores, features, model=False)
            live = [t for t in update.tracks if t.is_confirmed]
            tracks = [BBox.from_tlwh(*(float(v) for v in t.tlwh[:4])) for t in live]
            track_ids = [t.track_id for t in live]
            matched = [t for t in live if t.time_since_update == 0]
            shown = ([t.track_id for t in matched], _boxes([t.tlwh for t in matched]))
        if outputs is not None:
            outputs.append(shown)
        found = clock.time("face_ms", face_detector.detect, image)
        if found:
            embeddings = clock.time("embed_ms", embedder.embed, image, found)
            if clf is not None:
                predictions = clock.time("classify_ms", clf.predict, embeddings)
                faces_classified += len(predictions)
                for binding in bind_faces([f.box for f in found], tracks):
                    labels[track_ids[binding.person_index]] = str(predictions[binding.face_index].label)
        process.frame_done()
        last_done = time.perf_counter()
        if done == 0:
            first_done = last_done
        done += 1
    capture.release()
    return _result(clock, done, last_done - first_done, None, faces_classified, clock.cpu_ms, process)


def _boxes(boxes: list[Any]) -> np.ndarray:
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _input_side(stack: VisionStack) -> int:
    shape = getattr(getattr(stack.person_detector, "model", None), "input", None)
    return int(shape.shape[1]) if shape is not None and len(shape.shape) == 4 else 300


def run_agent(
    config: AgentConfig, stack: VisionStack | None, video: Path, frames: int, port: int, state_dir: Path
) -> dict[str, Any]:
    from agent.runtime.app import AgentApp

    cfg = for_video(config, video, port, state_dir)
    process = CpuSpan()
    app = AgentApp(
        cfg,
        max_frames=frames,
        vision=stack,
        install_signal_handlers=False,
        status_window=frames + 1,
        on_frame=process.frame_done,
    )
    code = asyncio.run(app.run())
    s = app.summary
    return {
        "exit_code": code,
        "frames": s.frames,
        "fps": round(s.fps, 2),
        "events": s.events,
        "latency_ms": s.latency_ms,
        "outbox_depth_at_exit": s.outbox_depth,
        "model_cpu_ms_per_frame": round(s.model_cpu_ms / max(s.frames, 1), 2),
        "cpu_ms_per_frame": process.ms_per_frame(),
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def _median_ratio(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float | None:
    """Median over rounds of a/b fps, each ratio taken from runs of the same round (close in time)."""
    ratios = [float(x["fps"]) / float(y["fps"]) for x, y in zip(a, b, strict=True) if y["fps"]]
    return round(_median(ratios), 3) if ratios else None


def _median_cpu_ratio(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float | None:
    """Median over rounds of b/a process CPU per frame: how many times less CPU a frame costs `a`
    than `b` (the load moves it far less than the fps ratio)."""
    ratios = [
        float(y["cpu_ms_per_frame"]) / float(x["cpu_ms_per_frame"])
        for x, y in zip(a, b, strict=True)
        if x["cpu_ms_per_frame"]
    ]
    return round(_median(ratios), 3) if ratios else None


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median fps (its latencies belong to the same run), plus every fps seen."""
    ordered = sorted(results, key=lambda r: float(r["fps"]))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["fps_runs"] = [r["fps"] for r in results]
    return chosen


def honest_bound(runs: list[dict[str, Any]], cores: int) -> dict[str, Any]:
    """Per round: the run's model CPU per frame / cores as a bound on its fps, and its share of it."""
    shares = [
        float(r["fps"]) * float(r["model_cpu_ms_per_frame"]) / (1000.0 * cores)
        for r in runs
        if float(r["model_cpu_ms_per_frame"]) > 0
    ]
    cpu_ms = _median([float(r["model_cpu_ms_per_frame"]) for r in runs])
    process_ms = _median([float(r["cpu_ms_per_frame"]) for r in runs])
    return {
        "cores": cores,
        "model_cpu_ms_per_frame": round(cpu_ms, 2),
        "bound_fps": round(1000.0 * cores / cpu_ms, 2) if cpu_ms else 0.0,
        "share": round(_median(shares), 3) if shares else None,
        "share_runs": [round(x, 3) for x in shares],
        # A design cannot beat the CPU its own models used: above 1.0 the measurement is wrong.
        "exceeded": any(x > 1.0 for x in shares),
        # The whole process's CPU per frame and the models' part of it: the share the agent would
        # reach with both cores to itself and perfect overlap (the load does not move it).
        "cpu_ms_per_frame": round(process_ms, 2),
        "model_share_of_cpu": round(cpu_ms / process_ms, 3) if process_ms else None,
    }


def make_hd_clip(source: Path, out: Path, frames: int) -> Path:
    """`frames` frames of `source` upscaled to 1920x1080 (mp4v), for the memory runs."""
    capture = cv2.VideoCapture(str(source))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (1920, 1080))
    try:
        for _ in range(frames):
            ok, image = capture.read()
            if not ok:
                break
            writer.write(cv2.resize(image, (1920, 1080), interpolation=cv2.INTER_LINEAR))
    finally:
        writer.release()
        capture.release()
    return out


# Runs the command and prints its peak RSS in kB. The bench itself is large, and Linux carries a
# process's peak RSS across fork and exec into the child's ru_maxrss: a small interpreter in
# between makes the number the command's own.
_RSS_PROBE = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "sys.stderr.write(done.stderr.decode(errors='replace')[-400:])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(done.returncode)\n"
)


def child_peak_rss_mb(command: list[str]) -> float:
    """Run `command` to its end; its peak resident set in MB (its own ru_maxrss)."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", _RSS_PROBE, *command], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... exited {done.returncode}: {done.stderr.strip()}")
    return round(int(done.stdout.split()[-1]) / 1024, 1)


def seed_child(video: Path, frames: int, assets: Path | None) -> int:
    """The seed loop alone in this process, with a trained classifier (for its peak RSS)."""
    from agent.logging_setup import configure_logging

    configure_logging("error", "console")
    limit_blas_threads()
    overrides: dict[str, Any] = {"device_id": "bench"}
    if assets is not None:
        overrides["assets_dir"] = assets
    config = _layout(load_config(None, **overrides), 1, 2)
    stack = build_vision_stack(config)
    clf: ClassifierLike | None = None
    trained = train_classifier(config, Path(tempfile.mkdtemp(prefix="facetrack-bench-seed-")))
    if trained is not None:
        clf = verified_classifier(trained, stack)
    run_original(config, stack, clf, video, frames)
    return 0


def measure_memory(
    config: AgentConfig,
    trained: tuple[bytes, str] | None,
    workdir: Path,
    port: int,
    videos: list[str],
    frames: int,
    quiet: bool,
) -> dict[str, dict[str, float]]:
    """Peak RSS of `facetrack-agent run` (and of the seed loop) per video, each in its own process."""
    from agent.devtools.demo import install_bundle

    exe = str(Path(sys.executable).with_name("facetrack-agent"))
    # The same people trained into the older skops payload (scikit-learn at run time), same key.
    skops = train_classifier(config, workdir, "skops") if trained is not None else None
    clips = {name: config.resolve_asset(VIDEOS[name]) for name in videos}
    clips["1080p"] = make_hd_clip(config.resolve_asset(VIDEOS["vtest"]), workdir / "vtest_1080p.mp4", frames)
    out: dict[str, dict[str, float]] = {}
    for name, clip in clips.items():
        row: dict[str, float] = {}
        legacy = [sys.executable, "-m", "bench.pipeline", LEGACY_AGENT_CHILD]
        layouts: list[tuple[str, list[str], tuple[bytes, str] | None]] = [
            ("agent", [], None),
            ("agent, frames as before", [], None),
            ("agent+classifier", [], trained),
            ("agent+skops classifier", [], skops),
            ("agent_1x2+classifier", ["--workers", "1", "--threads", "2"], trained),
        ]
        for kind, extra, model in layouts:
            state = workdir / f"memory-{name}-{kind}"
            keys: list[str] = []
            if model is not None:
                install_bundle(config.model_copy(update={"state_dir": state}), model[0])
                # train_classifier's key pair (agent.devtools.demo.train_bundle).
                keys = ["--trusted-key", str(workdir / "keys" / "demo.pub")]
            command = [
                *(legacy if kind == "agent, frames as before" else [exe]),
                "run",
                "--input",
                str(clip),
                "--max-frames",
                str(frames),
                "--state-dir",
                str(state),
            ]
            command += ["--device-id", "bench", "--broker", f"127.0.0.1:{port}", "--log-level", "error"]
            row[kind] = child_peak_rss_mb(command + keys + extra)
        seed = [sys.executable, "-m", "bench.pipeline", "--seed-child", str(clip), str(frames)]
        row["seed loop+classifier"] = child_peak_rss_mb(seed)
        if not quiet:
            print(f"   memory {name}: {row}", file=sys.stderr, flush=True)
        out[name] = row
    return out


LEGACY_AGENT_CHILD = "--legacy-agent-child"


def legacy_agent_child(argv: list[str]) -> int:
    """`facetrack-agent ARGS` with its frame memory as before (a 4-frame read-ahead at any frame size,
    glibc's own sliding mmap threshold), for the side-by-side column of the memory table. It changes
    the two module defaults in this child process only, before the agent starts."""
    import agent.runtime.malloc_tuning as malloc_tuning
    import agent.runtime.source as source
    from agent.cli import main as agent_main

    source.DEFAULT_QUEUE_BYTES = 1 << 62
    malloc_tuning.fix_mmap_threshold = lambda threshold=0: False
    return agent_main(argv)


def train_classifier(
    config: AgentConfig, workdir: Path, payload_kind: str = "arrays"
) -> tuple[bytes, str] | None:
    try:
        from agent.devtools.demo import demo_people, train_bundle
    except ImportError:
        return None
    bundle, public_key, _ = train_bundle(
        config, demo_people(config.assets_dir), workdir / "keys", payload_kind
    )
    return bundle, public_key


def verified_classifier(trained: tuple[bytes, str], stack: VisionStack) -> ClassifierLike:
    """The trained bundle checked and loaded as an agent does (its key trusted)."""
    from agent.classifier.verify import verify_bundle
    from agent.runtime.key_files import load_trusted_keys

    bundle, public_key = trained
    return verify_bundle(
        bundle,
        trusted_keys=load_trusted_keys([public_key]),
        embedder_id=stack.embedder.embedder_id,
        dim=stack.embedder.dim,
        running_version=None,
    ).classifier


def _layout(config: AgentConfig, workers: int, threads: int) -> AgentConfig:
    return config.model_copy(
        update={"inference": config.inference.model_copy(update={"workers": workers, "threads": threads})}
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [LEGACY_AGENT_CHILD]:
        return legacy_agent_child(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document (alone on stdout)")
    parser.add_argument("--frames", type=int, default=300, help="frames per video and mode [300]")
    parser.add_argument("--videos", nargs="+", choices=sorted(VIDEOS), default=["vtest", "hamilton"])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds per video [3]")
    parser.add_argument("--assets", type=Path, default=None, help="assets dir [models/assets]")
    parser.add_argument(
        "--memory-frames", type=int, default=150, help="frames per memory run (0: no memory runs) [150]"
    )
    parser.add_argument("--memory-only", action="store_true", help="only the peak RSS table")
    parser.add_argument("--seed-child", nargs=2, metavar=("VIDEO", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seed_child:
        return seed_child(Path(args.seed_child[0]), int(args.seed_child[1]), args.assets)
    if args.frames < 2 or args.repeat < 1 or args.memory_frames < 0:
        parser.error("--frames must be at least 2, --repeat at least 1 and --memory-frames at least 0")

    from agent.devtools.demo import install_bundle
    from agent.devtools.mosquitto import MosquittoBroker
    from agent.logging_setup import configure_logging

    configure_logging("error", "console")
    # As the agent does at start, for every mode (the seed loop too): one BLAS thread.
    limit_blas_threads()
    bench_run = BenchRun.start("bench.pipeline", argv, with_mosquitto=True)
    overrides: dict[str, Any] = {"device_id": "bench", "status": {"interval_s": 3600.0}}
    if args.assets is not None:
        overrides["assets_dir"] = args.assets
    config = load_config(None, **overrides)
    workdir = Path(tempfile.mkdtemp(prefix="facetrack-bench-"))
    single = _layout(config, 1, 2)
    stack = build_vision_stack(single)
    trained = train_classifier(config, workdir)
    clf: ClassifierLike | None = None
    if trained is not None:
        public_key = trained[1]
        config = config.model_copy(
            update={"classifier": config.classifier.model_copy(update={"trusted_keys": [public_key]})}
        )
        single = _layout(config, 1, 2)
        clf = verified_classifier(trained, stack)
    workers, threads = config.inference.workers, config.inference.threads
    cores_used = min(usable_cores(), workers * threads)
    report: dict[str, Any] = {
        "backend": stack.backend,
        "agent_layout": f"{workers}x{threads}",
        "cores_used_by_agent": cores_used,
        "classifier": clf is not None,
        "frames_per_mode": args.frames,
        "repeat": args.repeat,
        "modes": {m: DESCRIPTIONS[m].format(layout=f"{workers}x{threads}") for m in MODES},
        "videos": {},
    }
    with MosquittoBroker() as broker:
        for name in [] if args.memory_only else args.videos:
            video = config.resolve_asset(VIDEOS[name])
            if not args.json:
                print(f"== {name}: {video.name}", file=sys.stderr, flush=True)
            # Warm-up so the first mode does not pay for cold caches.
            run_sequential(single, stack, clf, video, 10)
            runs: dict[str, list[dict[str, Any]]] = {}

            def run_mode(
                mode: str, round_index: int, video: Path = video, name: str = name
            ) -> dict[str, Any]:
                if mode == "sequential":
                    return run_sequential(single, stack, clf, video, args.frames)
                if mode == "original":
                    return run_original(single, stack, clf, video, args.frames)
                # "agent" is the configured default layout, built by the app as in production.
                cfg = single if mode == SINGLE_WORKER_MODE else config
                state = workdir / f"state-{name}-{round_index}-{mode}"
                if trained is not None:
                    install_bundle(cfg.model_copy(update={"state_dir": state}), trained[0])
                vision = stack if mode == SINGLE_WORKER_MODE else None
                return run_agent(cfg, vision, video, args.frames, broker.port, state)

            for round_index in range(args.repeat):
                # Rotate the order each round so no mode always runs first or last.
                shift = round_index % len(MODES)
                for mode in MODES[shift:] + MODES[:shift]:
                    runs.setdefault(mode, []).append(run_mode(mode, round_index))
                    if not args.json:
                        print(
                            f"   round {round_index + 1} {mode}: {runs[mode][-1]['fps']} fps", file=sys.stderr
                        )
            modes = {mode: _median_run(results) for mode, results in runs.items()}
            entry: dict[str, Any] = dict(modes)
            entry.update(
                {
                    "agent_vs_sequential": _median_ratio(runs["agent"], runs["sequential"]),
                    "agent_vs_original": _median_ratio(runs["agent"], runs["original"]),
                    "agent_vs_original_cpu": _median_cpu_ratio(runs["agent"], runs["original"]),
                    "agent_1x2_vs_sequential": _median_ratio(runs[SINGLE_WORKER_MODE], runs["sequential"]),
                    "sequential_vs_original": _median_ratio(runs["sequential"], runs["original"]),
                    "bound": {
                        "agent": honest_bound(runs["agent"], cores_used),
                        SINGLE_WORKER_MODE: honest_bound(runs[SINGLE_WORKER_MODE], min(usable_cores(), 2)),
                    },
                }
            )
            report["videos"][name] = entry
        if args.memory_frames > 0:
            report["peak_rss_mb"] = measure_memory(
                config, trained, workdir, broker.port, args.videos, args.memory_frames, args.json
            )
    bench_run.finish()
    report["run"] = bench_run.as_json()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report, bench_run))
    return 0


def format_report(report: dict[str, Any], bench_run: BenchRun) -> str:
    lines = bench_run.header_lines()
    lines.append(
        f"backend {report['backend']}, agent layout {report['agent_layout']} (workers x TFLite threads) on "
        f"{report['cores_used_by_agent']} cores, classifier {'yes' if report['classifier'] else 'no'}, "
        f"{report['frames_per_mode']} frames per mode, median of {report['repeat']} rounds "
        "(order rotated; ratios per round)"
    )
    lines.append("modes:")
    lines += [f"  {mode:<11} {text}" for mode, text in report["modes"].items()]
    for name, r in report["videos"].items():
        lines.append(f"\n{name}")
        lines.append(
            f"  {'mode':<11} {'fps':>7}  {'CPU ms/f':>8}  {'events':>6}  {'faces':>5}  "
            f"{'fps of each round':<20} per-stage mean wall latency (ms)"
        )
        for mode in [m for m in MODES if m in r]:
            m = r[mode]
            stages = " ".join(f"{k.removesuffix('_ms')}={v:.1f}" for k, v in m["latency_ms"].items())
            rounds = ",".join(f"{v:.2f}" for v in m["fps_runs"])
            events = "-" if m["events"] is None else str(m["events"])
            faces = str(m.get("faces_classified", "-"))
            lines.append(
                f"  {mode:<11} {m['fps']:>7.2f}  {m['cpu_ms_per_frame']:>8.2f}  {events:>6}  {faces:>5}  "
                f"{rounds:<20} {stages}"
            )
        lines.append(
            f"  agent / original = {r['agent_vs_original']}x, "
            f"agent / sequential = {r['agent_vs_sequential']}x, "
            f"agent_1x2 / sequential = {r['agent_1x2_vs_sequential']}x, "
            f"sequential / original = {r['sequential_vs_original']}x"
        )
        lines.append(
            f"  CPU per frame: original / agent = {r['agent_vs_original_cpu']}x "
            "(process user+sys per frame, median of per-round ratios)"
        )
        for mode, b in r["bound"].items():
            verdict = " -- BOUND EXCEEDED: the bound is wrong" if b["exceeded"] else ""
            lines.append(
                f"  honest bound {mode}: {b['model_cpu_ms_per_frame']:.2f} model CPU ms per frame / "
                f"{b['cores']} cores = {b['bound_fps']:.2f} fps; reaches {b['share']} of it (per round: "
                f"{', '.join(str(x) for x in b['share_runs'])}){verdict}; models are "
                f"{b['model_share_of_cpu']} of its {b['cpu_ms_per_frame']:.2f} CPU ms per frame"
            )
    memory = report.get("peak_rss_mb")
    if memory:
        lines.append("\npeak RSS (MB) of a child process per mode, default settings unless named")
        kinds = list(next(iter(memory.values())))
        width = max(len(k) for k in kinds) + 2
        lines.append(f"  {'video':<10}" + "".join(f"{k:>{width}}" for k in kinds))
        for video, row in memory.items():
            lines.append(f"  {video:<10}" + "".join(f"{row.get(k, 0):>{width}.1f}" for k in kinds))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
