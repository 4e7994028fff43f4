"""The picture next to a train or evaluate report: three panels, one PNG.

1. genuine and impostor similarity histograms with the threshold line;
2. true-accept rate against false-accept rate as the threshold moves (log FAR axis), with the
   bundle's threshold marked;
3. the confusion matrix (rows: truth; columns: the name given at the threshold).

matplotlib is the `trainer` extra (agents do not need it); the Agg backend draws without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PANELS = ("similarity histograms", "TAR vs FAR", "confusion matrix")


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed; the message says how to get it."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(
            "matplotlib is not installed, so no PNG was drawn: pip install 'facetrack[trainer]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tar_far_curve(
    genuine: Sequence[float], impostor: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, FAR, TAR): share of impostor / genuine scores >= each threshold.

    Genuine scores are those of correctly picked faces only, as a named face with a wrong pick is
    never a true accept; impostor scores < 0 were rejected outright.
    """
    g = np.sort(np.asarray(genuine, dtype=np.float64))
    i = np.sort(np.asarray(impostor, dtype=np.float64))
    thresholds = np.unique(np.concatenate([g, i, [0.0, 1.0]]))
    far = 1.0 - np.searchsorted(i, thresholds, side="left") / max(len(i), 1)
    tar = 1.0 - np.searchsorted(g, thresholds, side="left") / max(len(g), 1)
    return thresholds, far, tar


def draw(
    path: Path,
    *,
    title: str,
    genuine: Sequence[float],
    impostor: Sequence[float],
    threshold: float,
    genuine_total: int,
    rows: Sequence[str],
    columns: Sequence[str],
    matrix: Sequence[Sequence[int]],
) -> Path:
    """Write the three-panel PNG to `path`; `genuine_total` counts every genuine face (the TAR
    denominator), including those picked wrongly, which have no genuine score."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(18, 5.8), gridspec_kw={"width_ratios": [1.1, 1.0, 1.2]})
    hist, curve, conf = axes
    impostor_shown = [s for s in impostor if s >= 0]
    bins = np.linspace(0.0, 1.0, 41)
    hist.hist(impostor_shown, bins=bins, alpha=0.6, color="tab:red", label=f"impostor ({len(impostor)})")
    hist.hist(list(genuine), bins=bins, alpha=0.6, color="tab:blue", label=f"genuine ({len(genuine)})")
    hist.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    hist.set_xlabel("cosine similarity to the picked person's nearest enrolled face")
    hist.set_ylabel("faces")
    hist.set_title("genuine vs impostor similarity")
    hist.legend(loc="best")

    _, far, tar = tar_far_curve(genuine, impostor)
    scale = len(genuine) / genuine_total if genuine_total else 0.0
    floor = 0.5 / max(len(impostor), 1)
    curve.step(np.maximum(far, floor), tar * scale, where="post", color="tab:blue")
    at_far = float(np.mean(np.asarray(impostor) >= threshold)) if len(impostor) else 0.0
    at_tar = float(np.mean(np.asarray(genuine) >= threshold)) * scale if len(genuine) else 0.0
    curve.plot([max(at_far, floor)], [at_tar], "ko", label=f"threshold: FAR {at_far:.3f}, TAR {at_tar:.3f}")
    curve.set_xscale("log")
    curve.set_xlim(floor, 1.0)
    curve.set_ylim(0.0, 1.02)
    curve.set_xlabel(f"false-accept rate (log; {len(impostor)} impostor faces)")
    curve.set_ylabel("true-accept rate")
    curve.set_title("TAR vs FAR")
    curve.grid(True, which="both", alpha=0.3)
    curve.legend(loc="lower right")

    data = np.asarray(matrix, dtype=np.int64).reshape(len(rows), len(columns))
    conf.imshow(data, cmap="Blues", aspect="auto")
    conf.set_xticks(range(len(columns)), labels=list(columns), rotation=45, ha="right", fontsize=8)
    conf.set_yticks(range(len(rows)), labels=list(rows), fontsize=8)
    if data.size <= 900:
        peak = data.max() if data.size else 0
        for (r, c), v in np.ndenumerate(data):
            if v:
                colour = "white" if v > peak / 2 else "black"
                conf.text(c, r, str(v), ha="center", va="center", fontsize=8, color=colour)
    conf.set_xlabel("named as (at the threshold)")
    conf.set_ylabel("truth")
    conf.set_title("confusion matrix")

    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # The panel list travels in the PNG's text chunk, so a test (or a script) can tell what is drawn.
    fig.savefig(path, dpi=100, metadata={"Title": title, "Description": "panels: " + "; ".join(PANELS)})
    plt.close(fig)
    return path
