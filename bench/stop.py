"""How long SIGTERM takes to end the agent with a stalled live stream, side by side with a looped
file (issue 24 item 4), on the real agent process and a real mosquitto, alternating the two so the
machine's load hits both alike.

    python -m bench.stop --pairs 5

Prints each run, the medians and their ratio, and the load average before and after.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agent.devtools.mosquitto import MosquittoBroker
from tests.robustness_helpers import AgentProcess, PacedSource

CLIP = Path("models/assets/data/video/hamilton_clip.mp4")


def _stop(args: list[str], state: Path, ready: object) -> float:
    agent = AgentProcess([*args, "--flush-timeout", "2"], state)
    try:
        agent.wait_event("agent_started")
        if callable(ready):
            ready(agent)
        else:
            agent.wait_log(lambda r: r.get("event") == "event")  # frames flow
        began = time.monotonic()
        agent.signal(signal.SIGTERM)
        code = agent.finish()
        took = time.monotonic() - began
        if code != 0:
            raise SystemExit(f"exit code {code}: {agent.tail()}")
        return took
    finally:
        agent.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=5, help="file/stalled pairs to run [5]")
    args = parser.parse_args(argv)
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    file_s: list[float] = []
    stalled_s: list[float] = []
    with MosquittoBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        broker_arg = ["--broker", f"{broker.host}:{broker.port}"]
        for n in range(args.pairs):
            file_s.append(_stop(["--input", str(CLIP), "--loop", *broker_arg], Path(tmp) / f"f{n}", None))
            source = PacedSource(CLIP, fps=30.0, stall_after=90)
            try:

                def stalled(agent: AgentProcess, source: PacedSource = source) -> None:
                    source.stalled.wait(120)
                    # Silent for longer than the read timeout: the reader is reconnecting.
                    seen = len(agent.logged("source_retry"))
                    agent.wait_log(lambda r: len(agent.logged("source_retry")) > seen)

                stalled_s.append(_stop(["--input", source.url, *broker_arg], Path(tmp) / f"s{n}", stalled))
            finally:
                source.close()
            print(
                f"pair {n}: looped file {file_s[-1]:.2f} s, stalled stream {stalled_s[-1]:.2f} s", flush=True
            )
    file_median, stalled_median = statistics.median(file_s), statistics.median(stalled_s)
    print(
        f"SIGTERM to exit, median of {args.pairs}: looped file {file_median:.2f} s, stalled stream "
        f"{stalled_median:.2f} s, ratio {stalled_median / file_median:.2f}"
    )
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
