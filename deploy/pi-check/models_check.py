"""pi-check: load and run every model in an assets folder, each in its own process, and compare.

    python models_check.py run ASSETS_DIR IMAGE FACE OUT_DIR   # one child process per model
    python models_check.py compare REFERENCE_DIR OUT_DIR    # outputs agree with another machine's

`run` loads each `models/*.tflite` through the agent's own loader (agent.vision.inference.load_model,
so the crash report of a model that kills the runtime is the one the agent gives) and runs it on a
real photo (IMAGE for detectors; FACE, an aligned face chip, for the 112x112 embedders, whose
output on a whole photo says nothing); OpenCV zoo models (`*.onnx`: YuNet, SFace) run through cv2.
A child that dies on a signal is reported with the signal and the end of what it printed.
Outputs are saved per model.
`compare` checks each output against a reference run (x86-64 on the host), so "runs" means
"computes the same thing", not just "does not crash": an SSD with the postprocess layout must give
the same detections (every detection scoring >= 0.5, the agent's default confidence, on one machine
has one on the other with the same class, and score and box corners within 0.02: the uint8 scores
differ by a few steps between CPU kernels, which reorders the low-score slots), any other output a
cosine similarity >= 0.99.
Exit 0 when every model ran (and agreed), else 1.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MIN_COSINE = 0.99
SSD_MIN_SCORE = 0.5
SSD_TOLERANCE = 0.02


def runtime_version() -> str:
    try:
        from importlib.metadata import version

        return f"ai-edge-litert {version('ai-edge-litert')}"
    except Exception:  # tflite_runtime fallback
        from importlib.metadata import version

        return f"tflite-runtime {version('tflite-runtime')}"


def run_one(model_path: Path, image_path: Path, face_path: Path, out_dir: Path) -> None:
    """Child process: load one model, run it once, save its outputs."""
    import faulthandler

    import cv2

    faulthandler.enable(all_threads=True)
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    started = time.monotonic()
    if model_path.suffix == ".tflite":
        from agent.vision.inference import load_model

        model = load_model(model_path, threads=1)
        loaded = time.monotonic()
        spec = model.input
        height, width = spec.shape[1], spec.shape[2]
        if (height, width) == (112, 112):  # a face embedder: an aligned face chip
            image = cv2.cvtColor(cv2.imread(str(face_path)), cv2.COLOR_BGR2RGB)
        resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        if spec.dtype == np.uint8:
            batch = resized[None].astype(np.uint8)
        else:
            batch = ((resized.astype(np.float32) - 127.5) / 127.5)[None]
        outputs = model.run(batch)
    elif "yunet" in model_path.name:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        detector = cv2.FaceDetectorYN.create(str(model_path), "", (bgr.shape[1], bgr.shape[0]), 0.6)
        loaded = time.monotonic()
        _, faces = detector.detect(bgr)
        outputs = [np.zeros((0, 15), np.float32) if faces is None else faces]
    elif "sface" in model_path.name:
        recognizer = cv2.FaceRecognizerSF.create(str(model_path), "")
        loaded = time.monotonic()
        crop = cv2.resize(cv2.imread(str(face_path)), (112, 112))
        outputs = [recognizer.feature(crop)]
    else:
        raise SystemExit(f"no way to run {model_path.name}")
    ran = time.monotonic()
    np.savez(out_dir / f"{model_path.name}.npz", *outputs)
    print(
        json.dumps(
            {
                "model": model_path.name,
                "load_s": round(loaded - started, 2),
                "run_s": round(ran - loaded, 2),
                "outputs": [list(o.shape) for o in outputs],
            }
        )
    )


def models_in(assets: Path) -> list[Path]:
    return sorted(p for p in (assets / "models").iterdir() if p.suffix in (".tflite", ".onnx"))


def run_all(assets: Path, image: Path, face: Path, out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"runtime: {runtime_version()}", flush=True)
    failed = 0
    for model in models_in(assets):
        child = subprocess.run(
            [sys.executable, __file__, "one", str(model), str(image), str(face), str(out_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode == 0:
            result = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"model ok: {model.name} load {result['load_s']} s, run {result['run_s']} s, "
                f"outputs {result['outputs']}",
                flush=True,
            )
            continue
        failed += 1
        how = (
            f"killed by {signal.Signals(-child.returncode).name}"
            if child.returncode < 0
            else f"exit {child.returncode}"
        )
        print(f"model FAILED: {model.name} ({how}); its stderr ends:", flush=True)
        for line in child.stderr.strip().splitlines()[-25:]:
            print(f"    {line}", flush=True)
    return 1 if failed else 0


def compare(reference: Path, out_dir: Path) -> int:
    failed = 0
    for ours in sorted(out_dir.glob("*.npz")):
        theirs = reference / ours.name
        if not theirs.is_file():
            print(f"compare: {ours.stem} has no reference output", flush=True)
            failed += 1
            continue
        a, b = np.load(ours), np.load(theirs)
        if _is_ssd_postprocess([a[k] for k in a.files]):
            mine, ref = _detections([a[k] for k in a.files]), _detections([b[k] for k in b.files])
            ok = _all_matched(mine, [b[k] for k in b.files]) and _all_matched(ref, [a[k] for k in a.files])
            failed += not ok
            shown = ", ".join(f"class {int(c)} {s:.3f}" for c, s, _ in mine)
            print(
                f"compare {'ok' if ok else 'FAILED'}: {ours.stem} detections >= {SSD_MIN_SCORE}: [{shown}]"
                f"; x86-64: [{', '.join(f'class {int(c)} {s:.3f}' for c, s, _ in ref)}]",
                flush=True,
            )
            continue
        cosines = []
        for key in a.files:
            x, y = a[key].astype(np.float64).ravel(), b[key].astype(np.float64).ravel()
            if x.shape != y.shape:
                cosines.append(float("nan"))
                continue
            denominator = np.linalg.norm(x) * np.linalg.norm(y)
            cosines.append(
                1.0 if denominator == 0 and not x.any() and not y.any() else float(x @ y / denominator)
            )
        ok = all(c >= MIN_COSINE for c in cosines)
        failed += not ok
        shown = ", ".join(f"{c:.4f}" for c in cosines)
        print(
            f"compare {'ok' if ok else 'FAILED'}: {ours.stem} cosine to x86-64 per output: {shown}",
            flush=True,
        )
    return 1 if failed else 0


def _is_ssd_postprocess(outputs: list[np.ndarray]) -> bool:
    """boxes [1,N,4], classes [1,N], scores [1,N], count [1]: TFLite_Detection_PostProcess."""
    shapes = [o.shape for o in outputs]
    return len(shapes) == 4 and len(shapes[0]) == 3 and shapes[0][2] == 4 and shapes[3] == (1,)


def _detections(
    outputs: list[np.ndarray], min_score: float = SSD_MIN_SCORE
) -> list[tuple[float, float, np.ndarray]]:
    boxes, classes, scores = outputs[0][0], outputs[1][0], outputs[2][0]
    found = [
        (float(c), float(s), b) for b, c, s in zip(boxes, classes, scores, strict=True) if s >= min_score
    ]
    return sorted(found, key=lambda d: (-d[1], d[0]))


def _all_matched(detections: list[tuple[float, float, np.ndarray]], other: list[np.ndarray]) -> bool:
    """Each detection has a counterpart in the other run's outputs (which may sit just under 0.5)."""
    candidates = _detections(other, SSD_MIN_SCORE - SSD_TOLERANCE)
    return all(
        any(
            c == c2 and abs(s - s2) <= SSD_TOLERANCE and float(np.abs(b - b2).max()) <= SSD_TOLERANCE
            for c2, s2, b2 in candidates
        )
        for c, s, b in detections
    )


def main(argv: list[str]) -> int:
    if len(argv) == 6 and argv[1] == "one":
        run_one(Path(argv[2]), Path(argv[3]), Path(argv[4]), Path(argv[5]))
        return 0
    if len(argv) == 6 and argv[1] == "run":
        return run_all(Path(argv[2]), Path(argv[3]), Path(argv[4]), Path(argv[5]))
    if len(argv) == 4 and argv[1] == "compare":
        return compare(Path(argv[2]), Path(argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
