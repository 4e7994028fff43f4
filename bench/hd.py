"""HD frames: today's whole-frame pipeline against regions + face crops + face quality, in one run.

    python -m bench.hd [--json] [--sections faces,people,cpu,native] [--frames N]

Sections (every derived frame and video is built in a temporary directory and deleted):
- faces:  face detector recall against face height (25-160 px) in 1920x1080 frames: the labelled
          face chips (data/faces/dlib_johns, 55) and the hand-labelled faces of the group photos
          (data/photos/dlib_faces, 70) pasted on a real background (vtest.avi's path without its
          pedestrians, upscaled). "whole" = BlazeFace back on the whole frame (today); "crop:X" =
          variant X on the head crop of the person box under each face (the box is drawn from the
          face, as a standing person's: 3 face heights wide, 7.5 tall). Also false faces per crop
          and model ms per crop; and recognition of the Johns (leave-one-out, nearest person mean
          of the other chips at full resolution) after detection (+ the quality gate, for crops).
- people: person recall against person height: vtest.avi frames (ground truth PETS09-S2L1) placed
          at several scales in a 1920x1080 frame; "whole" = the COCO SSD on the whole frame on
          every frame (today), "agent" = the analyzer with motion, regions and held still tracks,
          run over consecutive frames with the tracker, scored on every 5th frame after the 10th.
- cpu:    the real agent (AgentApp, MQTT to a private mosquitto, demo classifier) on a moving
          1080p clip (vtest.avi upscaled to cover 1920x1080) and on a still one (its first frame
          held, Gaussian sensor noise sigma 3), same length: fps, process CPU seconds, detector runs.
- demo:   the real agent on the demo clip (hamilton_clip.mp4, first `--demo-frames` frames) placed
          at scale 1.0, 0.6 and 0.4 in a black 1920x1080 frame, with the demo's classifier: who is
          named, today's settings against the new ones.
- native: the real agent on the shared clips at their own size (hamilton_clip.mp4 640x360,
          vtest.avi 768x576): fps, CPU seconds and events, today's settings against the new ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.config import AgentConfig, load_config
from agent.events.clock import FrameStamp
from agent.pipeline.analyzer import DetectionOptions, FrameAnalyzer
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.vision.blazeface import BlazeFaceDetector
from agent.vision.face_crops import faces_in_crops, head_region
from agent.vision.face_quality import QualityParams, measure
from agent.vision.factory import VisionStack, build_vision_stack
from agent.vision.inference import load_model
from agent.vision.tiling import TiledDetector, TileParams
from agent.vision.types import BBox, FaceDetection, Frame
from bench import hd_scenes as scenes
from bench.agent_config import for_video

FACE_HEIGHTS = (25, 30, 40, 50, 60, 70, 80, 100, 120, 160)
VARIANTS = ("back", "full_range", "short_range")
# Share of the 1080p frame's height the 576-line clip fills (1.0: 1.875x upscaled).
PERSON_SCALES = (0.3, 0.45, 0.6, 0.8, 1.0)
PERSON_BINS = (0, 60, 100, 150, 200, 300, 10_000)
COMMAND = "python -m bench.hd"


def today(config: AgentConfig) -> AgentConfig:
    """The settings before regions, crops and the quality gate: whole frames, every face votes."""
    return config.model_copy(
        update={
            "detection": config.detection.model_copy(
                update={
                    "motion": False,
                    "face_crops": False,
                    "face_min_height": 0.0,
                    "face_min_sharpness": 0.0,
                    "face_max_turn": 0.0,
                }
            )
        }
    )


# -- faces -------------------------------------------------------------------------------------


def photo_chips(assets: Path) -> list[tuple[str, str, Frame]]:
    """The hand-labelled faces of data/photos/dlib_faces (boxes of 35 px or more), each cut as a
    square chip around its box with context (face about 0.6 of the chip's side)."""
    root = assets / "data" / "photos" / "dlib_faces"
    chips: list[tuple[str, str, Frame]] = []
    for xml_name in ("training.xml", "testing.xml"):
        path = root / xml_name
        if not path.is_file():
            continue
        for image_node in ET.parse(path).getroot().iter("image"):
            image = cv2.imread(str(root / image_node.get("file", "")))
            if image is None:
                continue
            for n, box in enumerate(image_node.iter("box")):
                top, left = float(box.get("top", 0)), float(box.get("left", 0))
                w, h = float(box.get("width", 0)), float(box.get("height", 0))
                if h < 35:
                    continue
                side = h / 0.62
                cx, cy = left + w / 2, top + h / 2
                x0, y0 = round(cx - side / 2), round(cy - 0.55 * side)
                pad = int(side)
                padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
                chip = padded[y0 + pad : y0 + pad + round(side), x0 + pad : x0 + pad + round(side)]
                chips.append(("photo", f"{image_node.get('file')}#{n}", np.ascontiguousarray(chip)))
    return chips


def _hit(faces: list[FaceDetection], truth: BBox) -> FaceDetection | None:
    best = max(faces, key=lambda f: f.box.iou(truth), default=None)
    return best if best is not None and best.box.iou(truth) >= 0.3 else None


def bench_faces(config: AgentConfig, stack: VisionStack) -> dict[str, Any]:
    assets = config.assets_dir
    background = scenes.empty_background(config.resolve_asset("data/video/vtest.avi"))
    detectors = {
        v: BlazeFaceDetector(
            load_model(config.resolve_asset(f"models/face_detection_{v}.tflite"), threads=1),
            min_score=config.detection.face_confidence,
        )
        for v in VARIANTS
    }
    johns = scenes.measure_chips(detectors["back"], scenes.johns_chips(assets))
    sets = {"johns": johns, "photos": scenes.measure_chips(detectors["back"], photo_chips(assets))}
    quality = DetectionOptions.from_config(config.detection).quality or QualityParams()
    # Recognition gallery: each John's full-resolution chips, embedded once.
    gallery, labels = _johns_gallery(detectors["back"], stack, johns)
    crop_variant = Path(config.detection.face_crop_detector).stem.removeprefix("face_detection_")
    margin = config.detection.face_crop_margin
    out: dict[str, Any] = {"sets": {k: len(v) for k, v in sets.items()}, "crop_variant": crop_variant}
    recall: dict[str, dict[int, dict[str, Any]]] = {}
    recognition: dict[int, dict[str, Any]] = {}
    for height in FACE_HEIGHTS:
        counts: dict[str, int] = {"whole": 0, **{f"crop:{v}": 0 for v in VARIANTS}}
        false_faces = dict.fromkeys(VARIANTS, 0)
        crop_ms = dict.fromkeys(VARIANTS, 0.0)
        total = crops_run = 0
        rec = {"faces": 0, "whole": 0, "crops": 0, "skipped": 0}
        for set_name, chips in sets.items():
            for frame, pasted in scenes.paste_faces(background, chips, height, seed=height):
                whole = detectors["back"].detect(frame)
                size = (frame.shape[1], frame.shape[0])
                crops = [
                    head_region(p.person, size, margin=margin, person_index=i) for i, p in enumerate(pasted)
                ]
                valid = [c for c in crops if c is not None]
                crops_run += len(valid)
                found: dict[str, list[FaceDetection]] = {}
                for v, detector in detectors.items():
                    t0 = time.perf_counter()
                    found[v] = faces_in_crops(detector, frame, valid)
                    crop_ms[v] += (time.perf_counter() - t0) * 1000
                    false_faces[v] += sum(1 for f in found[v] if all(f.box.iou(p.face) < 0.3 for p in pasted))
                for p in pasted:
                    total += 1
                    whole_hit = _hit(whole, p.face)
                    counts["whole"] += whole_hit is not None
                    for v in VARIANTS:
                        counts[f"crop:{v}"] += _hit(found[v], p.face) is not None
                    if set_name != "johns":
                        continue
                    rec["faces"] += 1
                    index = next(i for i, c in enumerate(johns) if c.source == p.source)
                    if whole_hit is not None and _named(stack, frame, whole_hit, gallery, labels, index):
                        rec["whole"] += 1
                    crop_hit = _hit(found[crop_variant], p.face) if crop_variant in found else None
                    if crop_hit is not None:
                        if measure(frame, crop_hit).rejected(quality) is not None:
                            rec["skipped"] += 1
                        elif _named(stack, frame, crop_hit, gallery, labels, index):
                            rec["crops"] += 1
        recall[str(height)] = {  # type: ignore[index]
            "faces": total,
            **{k: round(v / total, 3) for k, v in counts.items()},
            **{f"false_per_crop:{v}": round(false_faces[v] / max(crops_run, 1), 3) for v in VARIANTS},
            **{f"ms_per_crop:{v}": round(crop_ms[v] / max(crops_run, 1), 2) for v in VARIANTS},
        }
        recognition[height] = rec
        print(f"  faces {height} px: {recall[str(height)]}", file=sys.stderr, flush=True)  # type: ignore[index]
    out["recall"] = recall
    out["recognition"] = {str(k): v for k, v in recognition.items()}
    return out


def _johns_gallery(
    detector: BlazeFaceDetector, stack: VisionStack, chips: list[scenes.Chip]
) -> tuple[np.ndarray[Any, Any], list[str]]:
    rows = []
    for chip in chips:
        border = int(chip.image.shape[0] * 0.6)
        padded = np.asarray(cv2.copyMakeBorder(chip.image, *(border,) * 4, cv2.BORDER_REPLICATE))
        face = max(detector.detect(padded), key=lambda f: f.score)
        rows.append(stack.embedder.embed(padded, [face])[0])
    return np.asarray(rows, dtype=np.float64), [chip.label for chip in chips]


def _named(
    stack: VisionStack,
    frame: Frame,
    face: FaceDetection,
    gallery: np.ndarray[Any, Any],
    labels: list[str],
    index: int,
) -> bool:
    embedding = np.asarray(stack.embedder.embed(frame, [face])[0], dtype=np.float64)
    return scenes.named_by_nearest_centre(embedding, gallery, labels, index)


# -- people ------------------------------------------------------------------------------------


def pets_ground_truth(config: AgentConfig) -> dict[int, list[BBox]] | None:
    """PETS09-S2L1 ground truth by vtest.avi frame index (from the assets, else the mirror)."""
    relative = Path("data/mot15/PETS09-S2L1/gt/gt.txt")
    candidates = [config.resolve_asset(relative)]
    mirror = os.environ.get("FACETRACK_ASSET_MIRROR")
    if mirror:
        candidates.append(Path(mirror) / relative)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return None
    truth: dict[int, list[BBox]] = {}
    for line in path.read_text().splitlines():
        parts = line.split(",")
        if len(parts) < 7 or float(parts[6]) == 0:
            continue
        frame, x, y, w, h = int(parts[0]) - 1, *(float(v) for v in parts[2:6])
        truth.setdefault(frame, []).append(BBox.from_tlwh(x, y, w, h))
    return truth


def bench_people(config: AgentConfig, stack: VisionStack, frames: int) -> dict[str, Any]:
    truth = pets_ground_truth(config)
    if truth is None:
        return {"skipped": "PETS09-S2L1/gt/gt.txt not in the assets or $FACETRACK_ASSET_MIRROR"}
    video = config.resolve_asset("data/video/vtest.avi")
    source = scenes.read_frames(video, frames)
    background = scenes.empty_background(video)
    bins = [f"{PERSON_BINS[i]}-{PERSON_BINS[i + 1]}" for i in range(len(PERSON_BINS) - 1)]
    counts = {mode: {b: [0, 0] for b in bins} for mode in ("whole", "agent", "tiles")}
    passes = {"whole": 0, "agent": 0}
    # The whole frame plus two rows of tiles ([tiles] rows = 2), on the same frames as "whole".
    tiled = TiledDetector(stack.person_detector, 300, TileParams(rows=2))
    for scale in PERSON_SCALES:
        factor = scale * min(1920 / 768, 1080 / 576)
        analyzer = FrameAnalyzer.from_stack(
            stack, DetectionOptions.from_config(config.detection, 300, config.person_boxes)
        )
        stage = TrackingStage.from_config(config)
        ox, oy = (1920 - round(768 * factor)) // 2, (1080 - round(576 * factor)) // 2
        for index, image in enumerate(source):
            frame = scenes.place(image, scale, background)
            sf = SourceFrame(index, frame, datetime.now(UTC), time.monotonic())
            analysis = analyzer.analyze(sf, stage.hints(index), None)
            stage.step(analysis, FrameStamp(index, datetime.now(UTC)))
            passes["agent"] += analysis.person_passes
            if index < 10 or index % 5:
                continue
            whole = stack.person_detector.detect(frame)
            tiles = tiled.detect(frame)
            passes["whole"] += 1
            agent_boxes = [BBox.from_tlwh(*row) for row in analysis.boxes_tlwh]
            for gt in truth.get(index, []):
                box = BBox(gt.x1 * factor + ox, gt.y1 * factor + oy, gt.x2 * factor + ox, gt.y2 * factor + oy)
                if box.x1 < 0 or box.y1 < 0 or box.x2 > 1920 or box.y2 > 1080:
                    continue
                b = next(bins[i] for i in range(len(bins)) if box.height < PERSON_BINS[i + 1])
                counts["whole"][b][1] += 1
                counts["agent"][b][1] += 1
                counts["tiles"][b][1] += 1
                counts["tiles"][b][0] += any(d.box.iou(box) >= 0.5 for d in tiles)
                counts["whole"][b][0] += any(d.box.iou(box) >= 0.5 for d in whole)
                counts["agent"][b][0] += any(a.iou(box) >= 0.5 for a in agent_boxes)
        print(f"  people scale {scale}: {counts}", file=sys.stderr, flush=True)
    return {
        "scales": list(PERSON_SCALES),
        "frames_per_scale": len(source),
        "recall": {
            b: {
                "people": counts["whole"][b][1],
                "whole": round(counts["whole"][b][0] / counts["whole"][b][1], 3)
                if counts["whole"][b][1]
                else None,
                "agent": round(counts["agent"][b][0] / counts["agent"][b][1], 3)
                if counts["agent"][b][1]
                else None,
                "tiles": round(counts["tiles"][b][0] / counts["tiles"][b][1], 3)
                if counts["tiles"][b][1]
                else None,
            }
            for b in bins
        },
        "agent_detector_runs_per_frame": round(passes["agent"] / (len(source) * len(PERSON_SCALES)), 2),
    }


# -- agent runs --------------------------------------------------------------------------------


def run_agent(
    config: AgentConfig, video: Path, frames: int, port: int, state: Path, bundle: bytes | None
) -> dict[str, Any]:
    from agent.devtools.demo import install_bundle
    from agent.runtime.app import AgentApp

    cfg = for_video(config, video, port, state)
    if bundle is not None:
        install_bundle(cfg, bundle)
    named: set[str] = set()

    def on_event(event: Any) -> None:
        if getattr(event, "type", "") == "identity" and event.label != "unknown":
            named.add(str(event.label))

    app = AgentApp(
        cfg, max_frames=frames, install_signal_handlers=False, status_window=frames + 1, on_event=on_event
    )
    cpu0 = time.process_time()
    code = asyncio.run(app.run())
    cpu = time.process_time() - cpu0
    s = app.summary
    return {
        "exit_code": code,
        "frames": s.frames,
        "fps": round(s.fps, 2),
        "cpu_s": round(cpu, 2),
        "events": s.events,
        "events_by_type": dict(sorted(s.events_by_type.items())),
        "person_detector_runs": app.person_passes,
        "faces_skipped": app.faces_skipped,
        "named": sorted(named),
    }


def bench_agent(
    config: AgentConfig,
    clips: dict[str, Path],
    frames: int,
    bundle: bytes | None,
    workdir: Path,
    port: int,
    repeat: int,
) -> dict[str, Any]:
    """Today's settings and the new ones on each clip, interleaved round by round."""
    modes: dict[str, Callable[[], AgentConfig]] = {"today": lambda: today(config), "new": lambda: config}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name, video in clips.items():
        for round_index in range(repeat):
            order = list(modes) if round_index % 2 == 0 else list(reversed(modes))
            for mode in order:
                state = workdir / f"state-{name}-{mode}-{round_index}"
                r = run_agent(modes[mode](), video, frames, port, state, bundle)
                results.setdefault(name, {}).setdefault(mode, []).append(r)
                print(f"  {name} {mode}: {r}", file=sys.stderr, flush=True)
    summary: dict[str, Any] = {}
    for name, by_mode in results.items():
        summary[name] = {}
        for mode, runs in by_mode.items():
            best = sorted(runs, key=lambda r: r["cpu_s"])[(len(runs) - 1) // 2]
            summary[name][mode] = dict(
                best, cpu_s_runs=[r["cpu_s"] for r in runs], fps_runs=[r["fps"] for r in runs]
            )
    return summary


def build_clips(config: AgentConfig, workdir: Path, frames: int) -> dict[str, Path]:
    video = config.resolve_asset("data/video/vtest.avi")
    moving = workdir / "moving_1080p.mp4"
    scenes.write_video(moving, scenes.covered_clip(video, frames), 10.0)
    first = scenes.cover(scenes.read_frames(video, 1)[0])
    still = workdir / "still_1080p.mp4"
    scenes.write_video(still, scenes.still_clip(first, frames), 10.0)
    return {"moving_1080p": moving, "still_1080p": still}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--sections", default="faces,people,cpu,demo,native", help="comma-separated [all five]"
    )
    parser.add_argument("--demo-frames", type=int, default=90, help="demo clip frames per scale [90]")
    parser.add_argument("--frames", type=int, default=150, help="frames per agent run [150]")
    parser.add_argument("--person-frames", type=int, default=60, help="vtest frames per scale [60]")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds per agent clip [1]")
    parser.add_argument("--assets", type=Path, default=None, help="assets dir [models/assets]")
    args = parser.parse_args(argv)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"faces", "people", "cpu", "demo", "native"}
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")

    from agent.devtools.mosquitto import MosquittoBroker
    from agent.logging_setup import configure_logging
    from bench.pipeline import train_classifier

    configure_logging("error", "console")
    overrides: dict[str, Any] = {"device_id": "bench", "status": {"interval_s": 3600.0}}
    if args.assets is not None:
        overrides["assets_dir"] = args.assets
    config = load_config(None, **overrides)
    stack = build_vision_stack(config)
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    report: dict[str, Any] = {
        "command": command,
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
        f"python {platform.python_version()}, opencv {cv2.__version__}".replace("  ", " "),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    workdir = Path(tempfile.mkdtemp(prefix="facetrack-hd-"))
    if "faces" in sections:
        report["faces"] = bench_faces(config, stack)
    if "people" in sections:
        report["people"] = bench_people(config, stack, args.person_frames)
    if sections & {"cpu", "demo", "native"}:
        trained = train_classifier(config, workdir)
        bundle = None
        if trained is not None:
            bundle, public_key = trained
            config = config.model_copy(
                update={"classifier": config.classifier.model_copy(update={"trusted_keys": [public_key]})}
            )
        with MosquittoBroker() as broker:
            if "cpu" in sections:
                clips = build_clips(config, workdir, args.frames)
                report["cpu"] = bench_agent(
                    config, clips, args.frames, bundle, workdir, broker.port, args.repeat
                )
            if "demo" in sections:
                ham = config.resolve_asset("data/video/hamilton_clip.mp4")
                demo: dict[str, Path] = {}
                for scale in (1.0, 0.6, 0.4):
                    demo[f"hamilton_1080p_at_{scale}"] = workdir / f"hamilton_1080p_{scale}.mp4"
                    scenes.write_video(
                        demo[f"hamilton_1080p_at_{scale}"],
                        scenes.placed_clip(ham, scale, args.demo_frames),
                        29.97,
                    )
                report["demo"] = bench_agent(config, demo, args.demo_frames, bundle, workdir, broker.port, 1)
            if "native" in sections:
                native = {
                    "hamilton": config.resolve_asset("data/video/hamilton_clip.mp4"),
                    "vtest": config.resolve_asset("data/video/vtest.avi"),
                }
                report["native"] = bench_agent(
                    config, native, max(args.frames, 275), bundle, workdir, broker.port, args.repeat
                )
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"$ {r['command']}",
        f"machine: {r['machine']}",
        f"load average before {r['load_average_before']}, after {r['load_average_after']}",
    ]
    if "faces" in r:
        f = r["faces"]
        lines += [
            "",
            f"Face detector recall vs face height, 1920x1080 (sets: {f['sets']}; "
            f"the agent's crops use {f['crop_variant']})",
            "height px | faces | whole (today) | crop:back | crop:full_range | crop:short_range | "
            "false/crop back,full,short | ms/crop back,full,short",
        ]
        for h, e in f["recall"].items():
            false = ",".join(str(e[f"false_per_crop:{v}"]) for v in VARIANTS)
            ms = ",".join(str(e[f"ms_per_crop:{v}"]) for v in VARIANTS)
            lines.append(
                f"{h:>9} | {e['faces']:>5} | {e['whole']:>13} | {e['crop:back']:>9} | "
                f"{e['crop:full_range']:>15} | {e['crop:short_range']:>16} | {false} | {ms}"
            )
        lines += [
            "",
            "Recognition vs face height (dlib_johns, leave-one-out; crops include the quality gate)",
            "height px | faces | named, whole (today) | named, crops | skipped by quality",
        ]
        for h, e in f["recognition"].items():
            lines.append(f"{h:>9} | {e['faces']:>5} | {e['whole']:>20} | {e['crops']:>12} | {e['skipped']}")
    if "people" in r:
        p = r["people"]
        lines += [""]
        if "skipped" in p:
            lines.append(f"Person recall: skipped ({p['skipped']})")
        else:
            lines += [
                f"Person recall vs person height (vtest.avi at scales {p['scales']} in 1920x1080, "
                f"PETS09 ground truth, IoU >= 0.5; agent: {p['agent_detector_runs_per_frame']} "
                "detector runs per frame)",
                "height px | people | whole (today) | agent (regions) | whole + tiles (rows 2)",
            ]
            for b, e in p["recall"].items():
                lines.append(
                    f"{b:>9} | {e['people']:>6} | {e['whole']!s:>13} | {e['agent']!s:>15} | {e['tiles']}"
                )
    for section, title in (
        ("cpu", "Agent on 1080p clips"),
        ("demo", "Agent on the demo clip placed in 1920x1080 (demo classifier)"),
        ("native", "Agent on the shared clips at native size"),
    ):
        if section not in r:
            continue
        lines += [
            "",
            title,
            "clip | mode | frames | fps | CPU s | CPU s per frame | detector runs | events | skipped faces",
        ]
        for clip, modes in r[section].items():
            for mode, e in modes.items():
                per = e["cpu_s"] / max(e["frames"], 1)
                lines.append(
                    f"{clip} | {mode} | {e['frames']} | {e['fps']} | {e['cpu_s']} | {per:.3f} | "
                    f"{e['person_detector_runs']} | {e['events']} {e['events_by_type']} | "
                    f"{e['faces_skipped']} | named {e['named']}"
                )
        if section == "cpu" and {"moving_1080p", "still_1080p"} <= set(r[section]):
            for mode in ("today", "new"):
                still = r[section]["still_1080p"][mode]["cpu_s"]
                moving = r[section]["moving_1080p"][mode]["cpu_s"]
                lines.append(f"still / moving CPU, {mode}: {still / moving:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
