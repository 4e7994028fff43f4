"""Backend selection for Edge TPU models.

No Coral and no libedgetpu exist on this machine, so the Edge TPU cannot run here. One test uses
LiteRT's real delegate loader, which fails here exactly as on a Pi without the runtime; the others
monkeypatch it to fail in a chosen way (or, in two tests, to hand back a stand-in delegate, with the
library check passed, so we can see the Edge TPU path is taken). Everything else loads real models.
"""

from __future__ import annotations

import gc
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from agent.config import load_config
from agent.vision import inference
from agent.vision.factory import build_vision_stack
from agent.vision.inference import (
    EDGETPU_LIBRARY,
    ModelLoadError,
    ModelNotFoundError,
    cpu_twin,
    load_model,
)


def _no_edgetpu(library: str, *args: Any, **kwargs: Any) -> Any:
    raise ValueError(f"Failed to load delegate from {library}")


@pytest.fixture
def coral_pair(tmp_path: Path, asset: Any) -> tuple[Path, Path]:
    """An Edge TPU file name next to its CPU twin (both the real COCO SSD bytes)."""
    source = asset("models/coco_ssd_mobilenet_v1_1.0_quant.tflite")
    edgetpu = tmp_path / "ssd_coco_quant_postprocess_edgetpu.tflite"
    twin = tmp_path / "ssd_coco_quant_postprocess.tflite"
    shutil.copyfile(source, edgetpu)
    shutil.copyfile(source, twin)
    return edgetpu, twin


def test_cpu_twin_name() -> None:
    assert cpu_twin(Path("/m/face_quant_postprocess_edgetpu.tflite")) == Path(
        "/m/face_quant_postprocess.tflite"
    )


def test_cpu_model_loads_on_cpu_with_threads(asset: Any) -> None:
    model = load_model(asset("models/face_detection_short_range.tflite"), threads=1)
    assert model.backend == "cpu"
    shapes = sorted(output.shape for output in model.run(np.zeros(model.input.shape, np.float32)))
    assert shapes == [(1, 896, 1), (1, 896, 16)]


def test_edgetpu_without_delegate_and_no_fallback_names_the_twin(
    coral_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    edgetpu, twin = coral_pair
    monkeypatch.setattr(inference, "load_delegate", _no_edgetpu)
    with pytest.raises(ModelLoadError) as raised:
        load_model(edgetpu, allow_cpu_fallback=False)
    message = str(raised.value)
    assert "\n" not in message
    assert EDGETPU_LIBRARY in message and str(twin) in message and "allow_cpu_fallback" in message


def test_real_delegate_loader_without_libedgetpu(coral_pair: tuple[Path, Path]) -> None:
    """No monkeypatch: this machine really has no libedgetpu.so.1, so LiteRT's own
    load_delegate fails as it does on a Pi without the runtime, and our handling must hold."""
    edgetpu, twin = coral_pair
    with pytest.raises(ModelLoadError) as raised:
        load_model(edgetpu, allow_cpu_fallback=False)
    assert "\n" not in str(raised.value) and str(twin) in str(raised.value)
    model = load_model(edgetpu, threads=1, allow_cpu_fallback=True)
    assert model.backend == "cpu" and model.path == twin


def _unraisable_during(action: Any) -> list[str]:
    """What the interpreter reports as 'Exception ignored' while `action` runs and garbage is collected."""
    seen: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda report: seen.append(f"{report.exc_type.__name__}: {report.exc_value}")
    try:
        action()
        gc.collect()
    finally:
        sys.unraisablehook = previous
    return seen


def test_litert_leaves_a_broken_delegate_without_libedgetpu() -> None:
    """Pins why check_edgetpu_library exists: LiteRT's own loader, without the library, leaves a
    half-built Delegate whose finaliser raises. If this fails, LiteRT fixed it and the check can go."""

    def load() -> None:
        with pytest.raises((ValueError, OSError)):
            inference.load_delegate(EDGETPU_LIBRARY)

    assert any("_library" in line for line in _unraisable_during(load))


def test_falling_back_without_libedgetpu_leaves_no_broken_delegate(coral_pair: tuple[Path, Path]) -> None:
    edgetpu, _ = coral_pair
    assert _unraisable_during(lambda: load_model(edgetpu, threads=1, allow_cpu_fallback=True)) == []


def test_edgetpu_fallback_loads_twin_and_warns(
    coral_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    edgetpu, twin = coral_pair
    monkeypatch.setattr(inference, "load_delegate", _no_edgetpu)
    with capture_logs() as logs:
        model = load_model(edgetpu, threads=1, allow_cpu_fallback=True)
    assert model.backend == "cpu"
    assert model.path == twin
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert warnings and warnings[0]["event"] == "edgetpu_unavailable_using_cpu_twin"
    assert warnings[0]["cpu_model"] == twin.name


def test_edgetpu_fallback_with_twin_missing_is_a_clear_error(
    coral_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    edgetpu, twin = coral_pair
    twin.unlink()
    monkeypatch.setattr(inference, "load_delegate", _no_edgetpu)
    with pytest.raises(ModelLoadError, match=r"CPU twin .* is missing") as raised:
        load_model(edgetpu, allow_cpu_fallback=True)
    assert str(twin) in str(raised.value)


def test_edgetpu_model_uses_the_delegate_when_it_loads(
    coral_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-in delegate and interpreter: only checks the Edge TPU path is chosen and wired."""
    edgetpu, _ = coral_pair
    calls: dict[str, Any] = {}
    real_interpreter = inference.Interpreter

    def fake_delegate(library: str) -> str:
        calls["library"] = library
        return "edgetpu-delegate"

    def fake_interpreter(**kwargs: Any) -> Any:
        calls["delegates"] = kwargs.pop("experimental_delegates")
        return real_interpreter(**kwargs)

    monkeypatch.setattr(inference, "check_edgetpu_library", lambda: None)
    monkeypatch.setattr(inference, "load_delegate", fake_delegate)
    monkeypatch.setattr(inference, "Interpreter", fake_interpreter)
    model = load_model(edgetpu, allow_cpu_fallback=False)
    assert model.backend == "edgetpu"
    assert calls == {"library": EDGETPU_LIBRARY, "delegates": ["edgetpu-delegate"]}


def test_missing_model_file_is_one_line_naming_path_and_fetch(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tflite"
    with pytest.raises(ModelNotFoundError) as raised:
        load_model(missing)
    message = str(raised.value)
    assert "\n" not in message and str(missing) in message
    assert "make setup" in message and "facetrack-agent assets fetch" in message


def test_garbage_model_file_is_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer" * 64)
    with pytest.raises(ModelLoadError, match="not a loadable TFLite model"):
        load_model(garbage)


def test_factory_reports_missing_model_path(assets_dir: Path, tmp_path: Path) -> None:
    config = load_config(assets_dir=str(assets_dir), models={"embedder": str(tmp_path / "absent.onnx")})
    with pytest.raises(ModelNotFoundError, match=r"absent\.onnx.*make setup"):
        build_vision_stack(config)


def test_factory_falls_back_for_an_edgetpu_person_detector(
    assets_dir: Path, coral_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    edgetpu, _ = coral_pair
    monkeypatch.setattr(inference, "load_delegate", _no_edgetpu)
    config = load_config(
        assets_dir=str(assets_dir),
        models={"person_detector": str(edgetpu)},
        inference={"allow_cpu_fallback": True, "threads": 1},
    )
    stack = build_vision_stack(config)
    assert stack.backend == "cpu"
    assert stack.backends["person_detector"] == "cpu"


def test_ssd_face_kind_builds_a_keypointless_detector_and_margin_embedder(assets_dir: Path) -> None:
    """Coral's SSD face model is not in the mirror; the COCO SSD (same output layout) stands in to
    check the wiring: SsdFaceDetector, FaceDetection without keypoints, margin-crop embedder id."""
    import cv2

    from agent.vision.ssd_detector import SsdFaceDetector

    config = load_config(
        assets_dir=str(assets_dir),
        models={
            "face_detector": "models/coco_ssd_mobilenet_v1_1.0_quant.tflite",
            "face_detector_kind": "ssd",
        },
        detection={"face_confidence": 0.5},
    )
    stack = build_vision_stack(config)
    assert isinstance(stack.face_detector, SsdFaceDetector)
    assert stack.embedder.embedder_id == "sface-int8bq-128-margin112m10-v1"
    capture = cv2.VideoCapture(str(assets_dir / "data/video/vtest.avi"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    faces = stack.face_detector.detect(frame)
    assert faces and all(f.keypoints is None and f.score >= 0.5 for f in faces)
    vectors = stack.embedder.embed(frame, faces)
    assert vectors.shape == (len(faces), 128)


def test_concurrent_callers_get_the_same_results_as_one(asset: Any) -> None:
    """Interpreters are not thread-safe; the lock in TfliteModel.run must serialise invokes."""
    from concurrent.futures import ThreadPoolExecutor

    model = load_model(asset("models/face_detection_short_range.tflite"), threads=1)
    rng = np.random.default_rng(7)
    inputs = [rng.uniform(-1, 1, model.input.shape).astype(np.float32) for _ in range(8)]
    expected = [model.run(x)[0] for x in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda x: model.run(x)[0], inputs * 8))
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, expected[i % len(inputs)])


def test_edgetpu_model_the_runtime_rejects_falls_back_too(
    coral_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-in delegate that loads, and an interpreter that rejects the delegated model (as a model
    compiled for a newer Edge TPU runtime is rejected): the CPU twin is used when allowed."""
    edgetpu, twin = coral_pair
    real_interpreter = inference.Interpreter

    def picky_interpreter(**kwargs: Any) -> Any:
        if kwargs.get("experimental_delegates"):
            raise ValueError("Failed to prepare for TPU.\nUnsupported runtime version")
        return real_interpreter(**kwargs)

    monkeypatch.setattr(inference, "check_edgetpu_library", lambda: None)
    monkeypatch.setattr(inference, "load_delegate", lambda library: "edgetpu-delegate")
    monkeypatch.setattr(inference, "Interpreter", picky_interpreter)
    assert load_model(edgetpu, allow_cpu_fallback=True).path == twin
    with pytest.raises(ModelLoadError) as raised:
        load_model(edgetpu, allow_cpu_fallback=False)
    assert "Unsupported runtime version" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "name", ["face_detection_back", "coco_ssd_mobilenet_v1_1.0_quant", "mobilefacenet_128d"]
)
def test_a_batch_gives_the_same_outputs_as_one_item_at_a_time(asset: Any, name: str) -> None:
    """Whatever the graph does with a resized batch (BlazeFace resizes but folds the batch into
    its anchor axis), run() returns one output row per item, equal to running them one by one."""
    model = load_model(asset(f"models/{name}.tflite"), threads=1)
    spec = model.input
    rng = np.random.default_rng(5)
    if np.issubdtype(spec.dtype, np.integer):
        batch = rng.integers(0, 255, size=(3, *spec.shape[1:])).astype(spec.dtype)
    else:
        batch = rng.uniform(-1, 1, size=(3, *spec.shape[1:])).astype(spec.dtype)
    together = model.run(batch)
    apart = [model.run(batch[i : i + 1]) for i in range(3)]
    for index, output in enumerate(together):
        assert output.shape[0] == 3
        np.testing.assert_allclose(output, np.concatenate([a[index] for a in apart]), rtol=1e-4, atol=1e-4)
