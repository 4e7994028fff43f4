"""Benchmark `facetrack-trainer publish` against a running agent: wall time of the whole command,
from starting the process to the agent's answer printed, and what the imports it no longer does
would cost, measured side by side in the same run.

    python -m bench.publish [--pushes 5] [--agent-nice 10] [--baseline-tree DIR] [--json]

A real `facetrack-agent run` plays hamilton_clip.mp4 in a loop against a private mosquitto, with
the trusted key of a fresh signing key. Each push is a new, newer bundle (a classifier trained by
the trainer on synthetic vectors of the agent's embedder dimension: what is timed is publishing,
not what the model says), sent by a real `facetrack-trainer publish --public-key ... --json`
process, which checks the signature, publishes retained with QoS 1 and waits for the agent's
`model_applied`. `import_sklearn_skops_s` is a fresh `python -c "import sklearn.svm, skops.io"`,
run after each push: what publish paid before it stopped importing them. The trainer runs on a
workstation, the agent on a Pi; on this one machine the agent, which decodes a file as fast as it
can, runs at `--agent-nice` (10 by default; 0 to let it compete at full priority) so the publish
process is not measured starved by it. Logs go to stderr; with --json stdout carries the JSON
document alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.classifier.bundle import new_version
from agent.config import AgentConfig
from agent.devtools.mosquitto import MosquittoBroker
from agent.logging_setup import configure_logging
from agent.runtime.key_files import write_key_pair
from bench.machine import BenchRun
from trainer.dataset import FaceEmbedding
from trainer.training import train

VIDEO = "data/video/hamilton_clip.mp4"
DEVICE = "bench-cam"
# The agent loads its models and reaches the broker before it can answer the first push.
FIRST_ANSWER_S = 300.0


def _bundles(directory: Path, count: int, embedder_id: str, dim: int, private: Any) -> list[Path]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, dim))
    x = np.vstack([c + 0.05 * rng.normal(size=(4, dim)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = train(x, ["ada"] * 4 + ["bob"] * 4 + ["cy"] * 4)
    paths = []
    for i in range(count):
        path = directory / f"push{i}.ftm"
        path.write_bytes(
            result.sign(embedder_id=embedder_id, dim=dim, private_key=private, version=new_version())
        )
        paths.append(path)
        time.sleep(0.002)  # versions are microsecond timestamps: each push strictly newer
    return paths


def _publish(
    bundle: Path, broker: MosquittoBroker, public: Path, wait_s: float, tree: Path | None = None
) -> tuple[float, list[Any]]:
    """Wall time of one publish process and the answers it printed; `tree`: run that checkout's
    trainer instead (PYTHONPATH), e.g. an export of landed main for a side-by-side baseline."""
    # Run from inside the tree: `-m` puts the working directory before PYTHONPATH on sys.path.
    env = dict(os.environ, PYTHONPATH=str(tree)) if tree is not None else None
    cwd = tree if tree is not None else None
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable, "-m", "trainer.cli", "publish", str(bundle), "--device", DEVICE,
            "--broker", f"{broker.host}:{broker.port}", "--public-key", str(public),
            "--wait", str(wait_s), "--json",
        ],
        capture_output=True, text=True, timeout=wait_s + 60, check=False, env=env, cwd=cwd,
    )  # fmt: skip
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"bench.publish: publish exited {done.returncode}: {done.stderr.strip()}")
    return wall, json.loads(done.stdout)


def _import_heavy() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import sklearn.svm, skops.io"], check=True, timeout=120)
    return time.monotonic() - started


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3), "n": len(values)}


def measure(pushes: int, agent_nice: int, baseline: Path | None) -> dict[str, Any]:
    config = AgentConfig()
    embedding = FaceEmbedding.from_config(config, cache_dir=None, pad=0.5)
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        work = Path(tmp)
        _, public, private = write_key_pair(work / "keys", "bench")
        rounds = 2 if baseline is not None else 1
        bundles = _bundles(work, rounds * pushes + 1, embedding.embedder_id, embedding.dim, private)
        broker = MosquittoBroker()
        broker.start()
        agent = subprocess.Popen(
            [
                sys.executable, "-m", "agent", "run", "--input", str(config.assets_dir / VIDEO), "--loop",
                "--broker", f"{broker.host}:{broker.port}", "--device-id", DEVICE,
                "--trusted-key", str(public), "--state-dir", str(work / "state"),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.nice(agent_nice),
        )  # fmt: skip
        try:
            first_wall, first = _publish(bundles[0], broker, public, FIRST_ANSWER_S)
            walls, imports, latencies, baseline_walls = [], [], [], []
            pending = iter(bundles[1:])
            for _ in range(pushes):
                wall, answers = _publish(next(pending), broker, public, 30.0)
                if [a["result"] for a in answers] != ["applied"]:
                    raise SystemExit(f"bench.publish: the agent answered {answers}")
                walls.append(wall)
                latencies.append(float(answers[0]["seen_after_s"]))
                imports.append(_import_heavy())
                if baseline is not None:
                    wall, answers = _publish(next(pending), broker, public, 30.0, tree=baseline)
                    if [a["result"] for a in answers] != ["applied"]:
                        raise SystemExit(f"bench.publish: the agent answered the baseline {answers}")
                    baseline_walls.append(wall)
        finally:
            agent.terminate()
            agent.wait(timeout=60)
            broker.close()
    publish = _stats(walls)
    heavy = _stats(imports)
    compared: dict[str, Any] = {}
    if baseline_walls:
        old = _stats(baseline_walls)
        compared = {
            "baseline_tree": str(baseline),
            "baseline_publish_wall_s": old,
            "ratio_publish_to_baseline": round(publish["median"] / old["median"], 3),
        }
    return {
        **compared,
        "pushes": pushes,
        "agent_nice": agent_nice,
        "first_push_wall_s": round(first_wall, 3),
        "first_push_answers": first,
        "publish_wall_s": publish,
        "answer_after_publish_s": _stats(latencies),
        "import_sklearn_skops_s": heavy,
        "ratio_publish_to_old_imports": round(publish["median"] / heavy["median"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=5, help="timed pushes (default: %(default)s)")
    parser.add_argument(
        "--agent-nice", type=int, default=10, help="niceness of the agent process (default: %(default)s)"
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        metavar="DIR",
        help="also time, alternating push by push, the trainer of this checkout (e.g. `git archive` of "
        "landed main), same agent, same broker",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document alone on stdout")
    args = parser.parse_args(argv)
    configure_logging("warning", "auto")  # stderr: with --json, stdout is the document alone
    run = BenchRun.start("bench.publish", argv, with_mosquitto=True)
    result = measure(args.pushes, args.agent_nice, args.baseline_tree)
    run.finish()
    if args.json:
        print(json.dumps({"run": run.as_json(), **result}, indent=2))
        return 0
    print(run.header())
    print(f"agent niceness: {result['agent_nice']} (machine shared with other work: see the load average)")
    print(f"first push (agent still loading): {result['first_push_wall_s']} s wall")
    p, h, a = result["publish_wall_s"], result["import_sklearn_skops_s"], result["answer_after_publish_s"]
    print(f"publish, process start to the agent's answer printed: median {p['median']} s, max {p['max']} s "
          f"over {p['n']} pushes")  # fmt: skip
    print(f"  of which the agent's answer arrived after the publish: median {a['median']} s")
    print(f"import sklearn.svm + skops.io alone (what publish used to pay), same run: median {h['median']} s")
    print(f"ratio publish / those imports: {result['ratio_publish_to_old_imports']}")
    if "baseline_tree" in result:
        old = result["baseline_publish_wall_s"]
        print(
            f"baseline {result['baseline_tree']}, pushes alternating with the above: "
            f"median {old['median']} s, max {old['max']} s; "
            f"ratio publish / baseline: {result['ratio_publish_to_baseline']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
