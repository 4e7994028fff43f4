"""pi-check: load and run every model in an assets folder, each in its own process, and compare.

    python models_check.py run ASSETS_DIR IMAGE OUT_DIR     # one child process per model
    python models_check.py compare REFERENCE_DIR OUT_DIR    # outputs agree with another machine's

`run` loads each `models/*.tflite` through the agent's own loader (agent.vision.inference.load_model,
so the crash report of a model that kills the runtime is the one the agent gives) and runs it on a
real photo; OpenCV zoo models (`*.onnx`: YuNet, SFace) run through cv2. A child that dies on a signal
is reported with the signal and the end of what it printed. Outputs are saved per model.
`compare` checks each output against a reference run (x86-64 on the host): cosine similarity of
the flattened output >= 0.99, so "runs" means "computes the same thing", not just "does not crash".
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


def runtime_version() -> str:
    try:
        from importlib.metadata import version

        return f"ai-edge-litert {version('ai-edge-litert')}"
    except Exception:  # tflite_runtime fallback
        from importlib.metadata import version

        return f"tflite-runtime {version('tflite-runtime')}"


def run_one(model_path: Path, image_path: Path, out_dir: Path) -> None:
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
        crop = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), (112, 112))
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


def run_all(assets: Path, image: Path, out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"runtime: {runtime_version()}", flush=True)
    failed = 0
    for model in models_in(assets):
        child = subprocess.run(
            [sys.executable, __file__, "one", str(model), str(image), str(out_dir)],
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


def main(argv: list[str]) -> int:
    if len(argv) == 5 and argv[1] == "one":
        run_one(Path(argv[2]), Path(argv[3]), Path(argv[4]))
        return 0
    if len(argv) == 5 and argv[1] == "run":
        return run_all(Path(argv[2]), Path(argv[3]), Path(argv[4]))
    if len(argv) == 4 and argv[1] == "compare":
        return compare(Path(argv[2]), Path(argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
