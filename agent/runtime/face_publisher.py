"""Sends the stored faces to the broker, oldest first, one QoS 1 publish at a time (enrolment).

A face leaves the store only after its PUBACK, so a connection lost mid-publish sends it again
(the message keeps its id; `collect` drops the copy). While the link is down the faces wait in the
store within its bounds. Events go through the outbox on their own drain: faces never hold them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any, Protocol

from agent.pipeline.enrolment import KeptFace
from agent.runtime.face_message import FaceEncodeError, encode_face
from agent.runtime.face_store import FaceStore

# How often a publisher with faces waiting looks whether the link is back (it has no "connected"
# notification to wait on).
OFFLINE_POLL_S = 0.5
BATCH = 16
# A publish the broker refuses (an ACL without the faces topic) is retried with a growing pause, so
# a misconfigured broker costs a warning every RETRY_MAX_S, not a loop.
RETRY_MAX_S = 60.0


class LinkLike(Protocol):
    @property
    def connected(self) -> bool: ...

    async def publish_raw(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool: ...


class FacePublisher:
    def __init__(
        self,
        store: FaceStore,
        link: LinkLike,
        topic: str,
        *,
        device: str,
        embedder: str,
        jpeg_quality: int,
        log: Any,
    ) -> None:
        self.store = store
        self._link = link
        self._topic = topic
        self._device = device
        self._embedder = embedder
        self._jpeg_quality = jpeg_quality
        self._log = log
        self._wake = asyncio.Event()
        self.published = 0
        self.kept = 0
        # Faces lost because the disk refused them (counted apart from the bounds' drops).
        self.unstored = 0
        self._failures = 0

    def keep(self, faces: list[KeptFace]) -> None:
        """Encode and store the faces of tracks that just ended (one transaction), and wake the sender."""
        payloads: list[bytes] = []
        for face in faces:
            try:
                payloads.append(
                    encode_face(
                        face, device=self._device, embedder=self._embedder, jpeg_quality=self._jpeg_quality
                    )
                )
            except FaceEncodeError as exc:
                self._log.warning("face_not_kept", error=str(exc))
        if not payloads:
            return
        try:
            dropped = self.store.add_many(payloads)
        except (sqlite3.Error, OSError) as exc:
            # A face is never worth stopping the agent for (a full disk, a failing card).
            self.unstored += len(payloads)
            self._log.warning("face_not_stored", error=str(exc), unstored=self.unstored)
            return
        self.kept += len(payloads)
        if dropped:
            self._log.warning("faces_dropped", count=dropped, dropped_total=self.store.dropped_total)
        self._wake.set()

    @property
    def depth(self) -> int:
        return self.store.depth

    async def run(self) -> None:
        """Until cancelled: send what is stored whenever the link is up."""
        while True:
            self._wake.clear()
            try:
                sent_all, rows = await self._send_batch()
            except (sqlite3.Error, OSError) as exc:
                self._log.warning("faces_store_error", error=str(exc))
                sent_all, rows = False, 1
            if rows and sent_all:
                self._failures = 0
                continue
            if rows and not sent_all and self._link.connected:
                self._failures += 1
            wait = None if self.store.depth == 0 else OFFLINE_POLL_S
            if self._failures:
                wait = min(RETRY_MAX_S, OFFLINE_POLL_S * 2.0 ** min(self._failures, 10))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _send_batch(self) -> tuple[bool, int]:
        """Publish up to BATCH stored faces, deleting each on its PUBACK: (all sent, how many tried)."""
        rows = self.store.oldest(BATCH) if self._link.connected else []
        for face_id, payload in rows:
            if not await self._link.publish_raw(self._topic, payload, qos=1):
                return False, len(rows)
            self.store.delete(face_id)
            self.published += 1
        return True, len(rows)
