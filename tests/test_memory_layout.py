"""What keeps the agent small (docs/benchmarks.md#memory): extra inference workers share the rarely
used models, an agent without a classifier never imports scikit-learn, and the status reports the
resident set. Real models; the memory itself is measured by bench/pipeline.py, not here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.config import load_config
from agent.runtime.resources import build_analyzers
from agent.runtime.status import peak_rss_mb, rss_mb


def test_extra_workers_share_the_embedder_and_whole_frame_face_detector(assets_dir: Path) -> None:
    config = load_config(None, assets_dir=assets_dir, inference={"workers": 2, "threads": 1})
    analyzers, first = build_analyzers(config, None)
    assert len(analyzers) == 2
    one, two = analyzers
    # SFace is ~100 MB resident: one copy, serialised by its own lock.
    assert one.embedder is two.embedder is first.embedder
    assert one.face_detector is two.face_detector
    # The models every frame needs stay one per worker, so workers never wait on each other there.
    assert one.person_detector is not two.person_detector
    assert one.crop_face_detector is not two.crop_face_detector
    # One motion background and schedule per camera.
    assert one.options.scheduler is two.options.scheduler


def test_the_agent_without_a_classifier_imports_no_scikit_learn() -> None:
    code = (
        "import sys, agent.cli, agent.runtime.app, agent.runtime.cli, agent.runtime.model_service\n"
        "print(' '.join(m for m in ('sklearn', 'skops', 'pandas', 'matplotlib') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", done.stdout


def test_status_memory_fields_are_megabytes_of_this_process() -> None:
    now, peak = rss_mb(), peak_rss_mb()
    assert now is not None and 1.0 < now <= peak + 1.0
