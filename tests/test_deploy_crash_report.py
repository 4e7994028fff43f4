"""A runtime that crashes the process while a model loads leaves a readable report on stderr.

On arm64, ai-edge-litert 2.2.0 and 2.3.0 segfault in BlazeFace's allocate_tensors (docs/pi-check.md)
while the loader has fd 2 captured to re-log LiteRT's messages; the crash used to be a silent exit
139. No runtime crashes on this x86-64 machine, so the child process below stands a runtime in for
the real one whose allocate_tensors writes to fd 2 and then segfaults (faulthandler._sigsegv, a
real SIGSEGV); the loader, the capture and the crash report are the real ones.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent(
    """
    import faulthandler, os, sys
    from pathlib import Path
    import agent.vision.inference as inference

    class CrashingInterpreter:  # stands in for a runtime that segfaults in allocate_tensors
        def __init__(self, model_path, num_threads):
            pass
        def allocate_tensors(self):
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
            faulthandler._sigsegv()

    inference.Interpreter = CrashingInterpreter
    if sys.argv[2] == "agent":
        inference.enable_crash_reports()
    inference.load_model(Path(sys.argv[1]), threads=1)
    """
)


@pytest.mark.parametrize("mode", ["agent", "library"])
def test_a_segfault_while_a_model_loads_prints_the_python_stack(tmp_path: Path, mode: str) -> None:
    # "agent": faulthandler enabled at start, as facetrack-agent does; "library": never enabled.
    model = tmp_path / "face_detection_back.tflite"
    model.write_bytes(b"\0" * 16)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert "Fatal Python error: Segmentation fault" in result.stderr
    # The stack names the loader and the call that crashed, down from the caller.
    assert "in allocate_tensors" in result.stderr
    assert "in _load_cpu" in result.stderr
    assert "in load_model" in result.stderr


def test_after_a_load_faulthandler_is_as_it_was(asset) -> None:  # type: ignore[no-untyped-def]
    script = textwrap.dedent(
        """
        import faulthandler, sys
        from pathlib import Path
        from agent.vision.inference import enable_crash_reports, load_model
        faulthandler.disable()
        load_model(Path(sys.argv[1]), threads=1)
        off_after = faulthandler.is_enabled()
        enable_crash_reports()
        load_model(Path(sys.argv[1]), threads=1)
        print(off_after, faulthandler.is_enabled())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(asset("models/face_detection_back.tflite"))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # structlog, unconfigured, prints its records on stdout first.
    assert result.stdout.splitlines()[-1].split() == ["False", "True"]
