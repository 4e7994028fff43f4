"""One TFLite inference backend over LiteRT, with the Edge TPU delegate for `*_edgetpu.tflite` models.

`ai_edge_litert` is the runtime we declare; `tflite_runtime` is accepted when it is what a Pi image
already ships. The Edge TPU path is only: load the delegate, or fail/fall back to the CPU twin.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import structlog

try:
    from ai_edge_litert.interpreter import Interpreter, load_delegate
except ImportError:  # pragma: no cover - only on images that ship tflite_runtime instead
    from tflite_runtime.interpreter import Interpreter, load_delegate


EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_SUFFIX = "_edgetpu.tflite"

Backend = Literal["edgetpu", "cpu"]

_log = structlog.get_logger(__name__)


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message is one line meant for the user."""


class ModelNotFoundError(ModelLoadError):
    """The model file is not on disk (assets not fetched)."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """What a caller needs to know about one input or output tensor."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    scale: float
    zero_point: int


def cpu_twin(path: Path) -> Path:
    """The CPU model compiled from the same graph: `x_edgetpu.tflite` -> `x.tflite`."""
    return path.with_name(path.name[: -len(EDGETPU_SUFFIX)] + ".tflite")


def is_edgetpu_model(path: Path) -> bool:
    return path.name.endswith(EDGETPU_SUFFIX)


def missing_model_message(path: Path) -> str:
    return (
        f"model file {path} not found: run `make setup` or `facetrack-agent assets fetch` "
        "(or fix the path in [models])"
    )


class TfliteModel:
    """A loaded TFLite model; `run` is serialised because an interpreter is not thread-safe."""

    def __init__(self, interpreter: Any, path: Path, backend: Backend) -> None:
        self._interpreter = interpreter
        self._lock = threading.Lock()
        self._batch_ok = True
        self.path = path
        self.backend: Backend = backend
        self._interpreter.allocate_tensors()
        self.inputs = [_spec(d) for d in interpreter.get_input_details()]
        self.outputs = [_spec(d) for d in interpreter.get_output_details()]

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    def run(self, *arrays: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        """Feed one array per input, invoke, and return copies of every output in model order.

        A leading (batch) dimension other than the model's is honoured by resizing the
        interpreter when the graph allows it, else by invoking once per item.
        """
        if len(arrays) != len(self.inputs):
            raise ValueError(f"{self.path.name} takes {len(self.inputs)} input(s), got {len(arrays)}")
        with self._lock:
            if all(tuple(a.shape) == s.shape for a, s in zip(arrays, self.inputs, strict=True)):
                return self._invoke(arrays)
            if self._batch_ok and self._try_resize([tuple(a.shape) for a in arrays]):
                outputs = self._invoke(arrays)
                if all(output.shape[:1] == (len(arrays[0]),) for output in outputs):
                    return outputs
                # Some graphs (BlazeFace) accept the resize but fold the batch into another
                # axis: their outputs cannot be split per item, so never batch them again.
                self._batch_ok = False
            singles = [self._invoke([a[i : i + 1] for a in arrays]) for i in range(len(arrays[0]))]
            return [np.concatenate(parts, axis=0) for parts in zip(*singles, strict=True)]

    def _invoke(self, arrays: Sequence[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        for spec, array in zip(self.inputs, arrays, strict=True):
            if tuple(array.shape) != spec.shape:
                self._try_resize([tuple(a.shape) for a in arrays])
                break
        for spec, array in zip(self.inputs, arrays, strict=True):
            self._interpreter.set_tensor(spec.index, array.astype(spec.dtype, copy=False))
        self._interpreter.invoke()
        return [np.array(self._interpreter.get_tensor(spec.index)) for spec in self.outputs]

    def _try_resize(self, shapes: list[tuple[int, ...]]) -> bool:
        """Resize the inputs; on a graph that cannot (XNNPACK fixed-batch reshapes), restore the
        original shapes and remember not to try again."""
        original = [spec.shape for spec in self.inputs]
        try:
            self._reshape(shapes)
        except (RuntimeError, ValueError):
            self._batch_ok = False
            self._reshape(original)
            return False
        return True

    def _reshape(self, shapes: Sequence[tuple[int, ...]]) -> None:
        for spec, shape in zip(self.inputs, shapes, strict=True):
            self._interpreter.resize_tensor_input(spec.index, list(shape))
        self._interpreter.allocate_tensors()
        self.inputs = [_spec(d) for d in self._interpreter.get_input_details()]
        self.outputs = [_spec(d) for d in self._interpreter.get_output_details()]


def _spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(
        index=int(detail["index"]),
        name=str(detail["name"]),
        shape=tuple(int(v) for v in detail["shape"]),
        dtype=np.dtype(detail["dtype"]),
        scale=float(scale),
        zero_point=int(zero_point),
    )


def enable_crash_reports() -> None:
    """Have a crash in native code (a runtime segfault, SIGSEGV/SIGBUS/SIGFPE/SIGABRT/SIGILL) print
    every thread's Python stack on stderr instead of dying silently with exit 139. Called once by
    the agent at start; the model loader keeps the report on the real stderr while it captures fd 2."""
    faulthandler.enable(file=2, all_threads=True)


@contextlib.contextmanager
def _crash_report_to(fd: int) -> Iterator[None]:
    """While fd 2 is captured, point faulthandler at the real stderr (`fd`, a duplicate of it): a
    crash inside the runtime would otherwise write its report into the capture, which dies with
    the process. Afterwards faulthandler writes to fd 2 again (or stays off if it was off)."""
    was_enabled = faulthandler.is_enabled()
    faulthandler.enable(file=fd, all_threads=True)
    try:
        yield
    finally:
        if was_enabled:
            faulthandler.enable(file=2, all_threads=True)
        else:
            faulthandler.disable()


@contextlib.contextmanager
def _native_stderr_as_log(model: str) -> Iterator[None]:
    """LiteRT's C++ runtime writes to file descriptor 2 itself (for example "INFO: Created
    TensorFlow Lite XNNPACK delegate for CPU."), which would put a plain-text line into the JSON
    log stream and after one-line CLI errors. While a model is built, fd 2 goes to a temporary
    file; what the runtime said is then logged as structured lines (INFO at debug level).

    If the runtime crashes the process meanwhile, the crash report (faulthandler: the Python stack
    down to the loader, naming the call that crashed) still reaches the real stderr."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to protect
        yield
        return
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            with _crash_report_to(saved):
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            said = capture.read().decode(errors="replace")
    for line in filter(None, (text.strip() for text in said.splitlines())):
        if line.startswith("INFO:"):
            _log.debug("tflite_runtime_message", model=model, message=line)
        else:
            _log.warning("tflite_runtime_message", model=model, message=line)


def check_edgetpu_library() -> None:
    """OSError unless libedgetpu loads.

    LiteRT's Delegate.__init__ loads the library before it sets `_library`, which its __del__
    reads: without libedgetpu, `load_delegate` left a half-built Delegate whose finaliser raised
    AttributeError at a later garbage collection ("Exception ignored in Delegate.__del__", a
    12-line PytestUnraisableExceptionWarning in the test run). Loading the library here first
    means a Delegate is only built when its library is there.
    """
    ctypes.CDLL(EDGETPU_LIBRARY)


def load_model(path: Path, *, threads: int = 2, allow_cpu_fallback: bool = False) -> TfliteModel:
    """Load `path` on the Edge TPU when its name ends in `_edgetpu.tflite`, else on the CPU.

    Raises ModelNotFoundError for a missing file and ModelLoadError when the Edge TPU delegate is
    unavailable and falling back is not allowed (or the CPU twin is missing).
    """
    if not path.is_file():
        raise ModelNotFoundError(missing_model_message(path))
    if is_edgetpu_model(path):
        try:
            check_edgetpu_library()
            delegate = load_delegate(EDGETPU_LIBRARY)
        except (ValueError, OSError, RuntimeError) as exc:
            return _cpu_fallback(path, threads, allow_cpu_fallback, reason=str(exc) or type(exc).__name__)
        try:
            with _native_stderr_as_log(path.name):
                model = TfliteModel(
                    Interpreter(model_path=str(path), experimental_delegates=[delegate], num_threads=threads),
                    path,
                    "edgetpu",
                )
        except (ValueError, RuntimeError) as exc:  # e.g. compiled for a newer Edge TPU runtime
            return _cpu_fallback(path, threads, allow_cpu_fallback, reason=str(exc) or type(exc).__name__)
        _log.info("model_loaded", model=path.name, backend="edgetpu")
        return model
    return _load_cpu(path, threads)


def _load_cpu(path: Path, threads: int) -> TfliteModel:
    try:
        with _native_stderr_as_log(path.name):
            model = TfliteModel(Interpreter(model_path=str(path), num_threads=threads), path, "cpu")
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"model file {path} is not a loadable TFLite model: {exc}") from None
    _log.debug("model_loaded", model=path.name, backend="cpu", threads=threads)
    return model


def _cpu_fallback(path: Path, threads: int, allowed: bool, *, reason: str) -> TfliteModel:
    twin = cpu_twin(path)
    reason = " ".join(reason.split())  # one line, whatever the runtime printed
    if not allowed:
        raise ModelLoadError(
            f"{path.name} cannot run on the Edge TPU ({EDGETPU_LIBRARY}: {reason}); "
            f"plug in the Coral and install libedgetpu, or use the CPU model {twin} "
            "(or set inference.allow_cpu_fallback = true)"
        )
    if not twin.is_file():
        raise ModelLoadError(
            f"{path.name} cannot run on the Edge TPU ({EDGETPU_LIBRARY}: {reason}) "
            f"and its CPU twin {twin} is missing: fetch it or point [models] at a CPU model"
        )
    _log.warning(
        "edgetpu_unavailable_using_cpu_twin",
        model=path.name,
        cpu_model=twin.name,
        reason=reason,
    )
    return _load_cpu(twin, threads)
