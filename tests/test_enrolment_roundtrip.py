"""Learn who the cameras see, end to end (issue 19): real agents on the hamilton clip with no
classifier and [enrolment] on, a real `collect` on a real mosquitto, `cluster`, `name`, `train`,
`publish`, and a new agent run that names him. Nothing is mocked.

The module's fixture runs two agents (devices cam1 and cam2) on the clip at once, so one collected
inbox serves every test here.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config import load_config
from agent.devtools.mosquitto import MosquittoBroker
from tests.enrolment_helpers import Tap, agent, finish, index_lines, start_collect, trainer
from trainer.dataset import FaceEmbedding

DEVICES = ("cam1", "cam2")
# Three agent runs on the clip, a collect, a cluster and a train, on a shared 2-core machine.
pytestmark = pytest.mark.timeout(2400)
LMM = "lin-manuel-miranda"


@dataclass(frozen=True)
class Collected:
    broker: MosquittoBroker
    inbox: Path
    groups: list[dict[str, Any]]
    ungrouped: list[str]
    published: dict[str, int]


def _last_status(tap: Tap, device: str) -> dict[str, Any]:
    payloads = tap.payloads(f"facetrack/{device}/status")
    assert payloads, f"{device} published no status"
    status: dict[str, Any] = json.loads(payloads[-1])
    return status


@pytest.fixture(scope="module")
def collected(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collected]:
    work = tmp_path_factory.mktemp("enrolment")
    broker = MosquittoBroker()
    broker.start()
    try:
        tap = Tap(broker, [f"facetrack/{d}/{leaf}" for d in DEVICES for leaf in ("status", "availability")])
        inbox = work / "inbox"
        collector = start_collect(broker, inbox)
        clip = assets_dir / "data" / "video" / "hamilton_clip.mp4"
        agents = [agent(broker, d, work / f"state-{d}", ["--input", str(clip)]) for d in DEVICES]
        for process in agents:
            code, _, err = finish(process)
            assert code == 0, err[-2000:]
        for device in DEVICES:
            tap.wait_until(
                lambda d=device: tap.payloads(f"facetrack/{d}/availability")[-1:] == [b"stopped"],
                f"{device} stopped",
            )
        # The final status is published after the faces were acknowledged, before `stopped`.
        published = {d: _last_status(tap, d)["enrolment"]["faces_published"] for d in DEVICES}
        assert all(_last_status(tap, d)["enrolment"]["faces_queued"] == 0 for d in DEVICES)
        total = sum(published.values())
        assert total > 0
        # Every face the broker acknowledged reaches the collector's index (waited on, not timed).
        tap.wait_until(lambda: len(index_lines(inbox)) >= total, f"{total} faces in the inbox")
        collector.send_signal(signal.SIGINT)
        code, out, err = finish(collector)
        assert code == 0, err
        assert f"{total} new faces, 0 duplicates" in out, out
        tap.close()
        result = trainer("cluster", str(inbox), "--json", "--quiet", "--no-cache")
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        assert set(document) == {"groups", "ungrouped"}
        yield Collected(broker, inbox, document["groups"], document["ungrouped"], published)
    finally:
        broker.close()


def _embeddings(inbox: Path) -> dict[str, Any]:
    return {r["path"]: np.asarray(r["embedding"], dtype=np.float64) for r in index_lines(inbox)}


def _similarity_to(
    reference: Path, members: list[str], embeddings: dict[str, Any], assets_dir: Path
) -> float:
    """Mean cosine similarity of a reference photo's face to a group's faces (as `train` embeds it)."""
    embedding = FaceEmbedding.from_config(load_config(None, assets_dir=assets_dir), cache_dir=None, pad=0.5)
    faces = embedding.faces_in(reference)
    assert len(faces) == 1
    ref = faces[0] / np.linalg.norm(faces[0])
    rows = np.array([embeddings[m] / np.linalg.norm(embeddings[m]) for m in members])
    return float((rows @ ref).mean())


def test_the_largest_group_is_lin_manuel_miranda(collected: Collected, assets_dir: Path) -> None:
    groups = collected.groups
    assert len(groups) >= 2
    sizes = [len(g["members"]) for g in groups]
    assert sizes == sorted(sizes, reverse=True), "groups are largest first"
    embeddings = _embeddings(collected.inbox)
    assert set(embeddings) == {m for g in groups for m in g["members"]} | set(collected.ungrouped)
    ref = assets_dir / "data" / "faces" / "refs" / f"{LMM}.png"
    similarity = [_similarity_to(ref, g["members"], embeddings, assets_dir) for g in groups]
    # His reference photo is nearest to the largest group, by a clear margin over every other group.
    best = int(np.argmax(similarity))
    assert best == 0, similarity
    assert similarity[0] > max(similarity[1:]) + 0.1, similarity
    assert sizes[0] > sizes[1], sizes


def test_two_devices_seeing_him_make_one_group_listing_both(collected: Collected) -> None:
    records = {r["path"]: r for r in index_lines(collected.inbox)}
    largest = collected.groups[0]["members"]
    assert {records[m]["device"] for m in largest} == set(DEVICES)
    # No other group holds faces of his tracks.
    his_tracks = {(records[m]["device"], records[m]["track_id"]) for m in largest}
    for group in collected.groups[1:]:
        assert not {(records[m]["device"], records[m]["track_id"]) for m in group["members"]} & his_tracks
    groups = json.loads((collected.inbox / ".groups" / "groups.json").read_text())["groups"]
    assert groups[0]["devices"] == sorted(DEVICES)
    assert (collected.inbox / groups[0]["sheet"]).is_file()


def test_name_train_publish_and_a_new_run_names_him(
    collected: Collected, assets_dir: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    # The people the project already knows (their enrolment photos), and now him, from the inbox only.
    shutil.copytree(assets_dir / "data" / "faces" / "knn" / "train", photos)
    named = trainer("name", "g1", "--as", LMM, "--photos", str(photos), "--from", str(collected.inbox))
    assert named.returncode == 0, named.stderr
    copied = sorted((photos / LMM).iterdir())
    assert len(copied) == min(10, len(collected.groups[0]["members"]))
    keys = tmp_path / "keys"
    assert trainer("keygen", "--out", str(keys)).returncode == 0
    model = tmp_path / "model.ftm"
    trained = trainer(
        "train",
        str(photos),
        "--out",
        str(model),
        "--key",
        str(keys / "facetrack.key"),
        "--no-cache",
        "--quiet",
    )
    assert trained.returncode == 0, trained.stderr + trained.stdout
    # Given the new model, cluster says who the largest group probably is.
    again = trainer("cluster", str(collected.inbox), "--model", str(model), "--quiet", "--no-cache")
    assert again.returncode == 0, again.stderr
    saved = json.loads((collected.inbox / ".groups" / "groups.json").read_text())["groups"]
    assert saved[0]["probably"] == LMM and f"probably {LMM}" in again.stdout
    broker = collected.broker
    published = trainer(
        "publish", str(model), "--device", "cam3", "--broker", f"{broker.host}:{broker.port}",
        "--public-key", str(keys / "facetrack.pub"), "--wait", "0.1",
    )  # fmt: skip
    # Exit 2: no device answered yet; the agent takes the retained model when it connects.
    assert published.returncode == 2 and "published" in published.stdout, published.stderr
    tap = Tap(broker, ["facetrack/cam3/events", "facetrack/cam3/availability"])
    clip = assets_dir / "data" / "video" / "hamilton_clip.mp4"
    args = ["--input", str(clip), "--trusted-key", str(keys / "facetrack.pub")]
    run = agent(broker, "cam3", tmp_path / "state", args, FACETRACK_ENROLMENT__ENABLED="false")
    code, _, err = finish(run)
    assert code == 0, err[-2000:]
    tap.wait_until(lambda: tap.payloads("facetrack/cam3/availability")[-1:] == [b"stopped"], "cam3 stopped")
    events = tap.events("cam3")
    tap.close()
    named_labels = {e["label"] for e in events if e["type"] == "identity"}
    assert LMM in named_labels, sorted(named_labels)
