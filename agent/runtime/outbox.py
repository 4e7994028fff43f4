"""Durable, bounded store-and-forward queue of events between the pipeline and MQTT.

Every event is committed to SQLite (WAL, synchronous=FULL) before anyone may publish it and is
deleted only after the broker's PUBACK. The sequence counter lives in the same database and is
advanced in the same transaction as the insert, so a kill -9 at any instant leaves either the
whole event (with its seq) or nothing, and seq never repeats across restarts, even when the queue
was empty. Events carry the epoch of this run (new at every start), so even a disk that lost or
rolled back its files cannot make an (epoch, seq) repeat; a seq skipped by a crash (an event held
in memory, a commit cut short, rows the disk lost) is counted in `dropped_total` at the next start.

A write the disk refuses (full, I/O error) does not stop the agent: see `outbox_spill`. The
SQLite file itself (schema, integrity, owner, the SQL) is `outbox_store`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import structlog
from structlog.typing import FilteringBoundLogger

from agent.events.schema import EventBase
from agent.runtime.outbox_spill import Reservation, SeqReserve, Spill, SpilledRow
from agent.runtime.outbox_store import OutboxError, OutboxStore, new_epoch

# OutboxError is raised by the store but is part of this module's API (callers import it here).
__all__ = ["SPILL_MAX_BYTES", "SPILL_MAX_ROWS", "Outbox", "OutboxError", "OutboxRow"]

E = TypeVar("E", bound=EventBase)

# Events kept in memory while the disk refuses writes (also bounded by the outbox's own limits):
# about a megabyte, minutes of a busy camera.
SPILL_MAX_ROWS = 2000
SPILL_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    # None means "the device's events topic"; set only for events addressed elsewhere.
    topic: str | None
    payload: bytes


class Outbox:
    """SQLite outbox; not thread-safe: use it from the event loop thread only.

    Appends are synchronous: one small fsync'd transaction (well under a millisecond on an SSD,
    a few on an SD card), rare next to frame processing, and far simpler to reason about than a
    writer thread that could die with events in memory.
    """

    def __init__(
        self,
        path: Path,
        max_rows: int,
        max_bytes: int,
        logger: FilteringBoundLogger | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        """`owner` (the events topic) binds the file to one device: its queued events carry that
        device's topic and seq counter, so reopening it as another device is refused rather
        than publishing one device's history under another's name."""
        if max_rows < 1 or max_bytes < 1:
            raise ValueError("outbox max_rows and max_bytes must be positive")
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._log: FilteringBoundLogger = logger or structlog.get_logger("facetrack.outbox")
        self._store = OutboxStore(self.path, owner)
        # From here on these are the live values: spilled events and unstored acks never reach
        # the store, so its counters are only where the queue starts from.
        self._last_seq = self._store.last_seq
        self._dropped = self._store.dropped
        self._depth = self._store.depth
        self._bytes = self._store.bytes
        # A new epoch every start, never stored: no file can make this run reuse an (epoch, seq).
        self.epoch = new_epoch()
        self._dropped_stored = self._dropped
        self._spill = Spill(min(max_rows, SPILL_MAX_ROWS), min(max_bytes, SPILL_MAX_BYTES))
        # Rows the broker acknowledged whose DELETE the disk refused: not sent again by this process.
        self._acked_unstored: dict[int, int] = {}
        self._write_error: str | None = None
        reserve_path = self.path.with_name(self.path.name + ".seq")
        try:
            self._reserve: SeqReserve | None = SeqReserve.open(reserve_path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            self._store.db.close()
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a seq number"
            raise OutboxError(f"outbox seq file {reserve_path} cannot be used: {why}") from None
        # Seqs above the stored counter no longer in memory: delivered from memory, or counted in
        # `dropped` (reset by every commit, which stores them all).
        self._settled = 0
        self._reconcile(self._reserve)
        if self._depth:
            self._log.info("outbox_reopened", path=str(self.path), depth=self._depth, last_seq=self._last_seq)

    def _reconcile(self, reserve: SeqReserve) -> None:
        """Take over what the reserve knows beyond the database, and count what the last run lost.

        A new epoch every start makes (epoch, seq) unique whatever the disk kept (docs/operations.md);
        this makes the loss count and the seq line as right as the files allow, and says when not."""
        stored_seq = self._last_seq
        if reserve.created and stored_seq:
            self._log.warning(
                "outbox_seq_reserve_reset",
                path=str(self.path) + ".seq",
                last_seq=stored_seq,
                note="the seq reserve was missing or cut short: events the last run held only in "
                "memory, if any, are not counted; a new epoch keeps every (epoch, seq) unique",
            )
        reserved = reserve.current
        self._dropped = max(self._dropped, reserved.dropped)
        if reserved.seq > stored_seq:
            ahead = reserved.seq - stored_seq
            held = min(reserved.held, ahead)
            missing = max(0, ahead - held - reserved.settled)
            if held:
                self._log.warning(
                    "outbox_unstored_lost", events=held, last_seq=reserved.seq, at="previous run"
                )
            if missing:
                # Seqs handed out that neither the database nor memory accounts for: rows the disk
                # lost after it said they were written (a WAL cut short), or an event whose commit
                # a kill interrupted. Some may have reached the broker: an upper bound.
                self._log.error(
                    "outbox_rows_missing",
                    first_seq=stored_seq + 1,
                    last_seq=reserved.seq,
                    missing=missing,
                    note="the outbox is behind its seq reserve; counted as lost in events_dropped",
                )
            self._dropped += held + missing
            self._last_seq = reserved.seq
            self._settled = ahead
        elif reserved.seq < stored_seq and not reserve.created:
            self._log.warning("outbox_seq_reserve_behind", reserve_seq=reserved.seq, last_seq=stored_seq)
        # Persist the count now: a second crash before the next commit must not count them again.
        reserve.store(Reservation(self._last_seq, self._dropped, 0, self._settled))

    def _reservation(self, seq: int, extra_held: int = 0, extra_dropped: int = 0) -> Reservation:
        """The reserve's record for `seq`; `extra_*` are what the spill is about to hold and drop
        (a dropped seq is also settled: counted, not missing)."""
        return Reservation(
            seq, self._dropped + extra_dropped, len(self._spill) + extra_held, self._settled + extra_dropped
        )

    # -- writing -------------------------------------------------------------------------------

    def append(self, draft: E, topic: str | None = None) -> E:
        """Assign the next seq, persist the event, and return it with that seq.

        When the bounds are exceeded the oldest queued events are deleted in the same transaction
        and counted in `dropped_total` (and logged), so a full outbox never blocks the pipeline.
        When the disk refuses the write the event waits in memory instead (`write_error` says
        why); if even its seq cannot be reserved it is dropped, counted, and returned with seq 0.
        """
        if draft.seq != 0:
            raise ValueError(f"event already has seq {draft.seq}; only drafts with seq=0 can be appended")
        seq = self._last_seq + 1
        event = draft.model_copy(update={"seq": seq, "epoch": self.epoch})
        payload = event.model_dump_json().encode()
        if len(payload) > self.max_bytes:
            raise ValueError(f"event of {len(payload)} bytes exceeds the outbox max_bytes={self.max_bytes}")
        if self._reserve is not None:
            # Before the commit: the reserve is never behind a seq the database may hold.
            self._reserve.store(self._reservation(seq))
        try:
            depth, total, dropped_now, first_dropped = self._store.commit(
                seq,
                topic,
                payload,
                spilled=self._spill.rows(),
                acked=self._acked_unstored,
                depth=self._depth + len(self._spill) + 1,
                total=self._bytes + self._spill.bytes + len(payload),
                max_rows=self.max_rows,
                max_bytes=self.max_bytes,
                dropped=self._dropped,
                dropped_changed=self._dropped != self._dropped_stored,
            )
        except sqlite3.IntegrityError:
            raise
        except (sqlite3.DatabaseError, OSError) as exc:
            return self._spill_one(event, topic, payload, exc)
        self._last_seq, self._depth, self._bytes = seq, depth, total
        self._dropped_stored = self._dropped
        if self._write_error is not None:
            self._log.info("outbox_write_recovered", stored=len(self._spill) + 1, depth=depth)
            self._write_error = None
        self._spill.clear()
        self._acked_unstored.clear()
        self._settled = 0
        if dropped_now:
            self._note_dropped(dropped_now, first_dropped)
        return event

    def _spill_one(self, event: E, topic: str | None, payload: bytes, exc: BaseException) -> E:
        error = f"{type(exc).__name__}: {exc}"
        if self._write_error is None:
            self._log.error(
                "outbox_write_failed",
                path=str(self.path),
                error=error,
                note=(
                    f"events wait in memory (up to {self._spill.max_rows}) and are published while "
                    "the broker is up; they are written to disk once it has room again"
                ),
            )
        self._write_error = error
        seq = event.seq
        row = SpilledRow(seq, topic, payload)
        # Counted before it is recorded: a kill right after the store must find every drop in it.
        lost = self._spill.would_drop(row)
        if self._reserve is None or not self._reserve.store(
            self._reservation(seq, extra_held=1 - lost, extra_dropped=lost)
        ):
            self._dropped += 1
            self._log.warning(
                "outbox_event_dropped", reason="its seq cannot be recorded", dropped_total=self._dropped
            )
            return event.model_copy(update={"seq": 0})
        self._last_seq = seq
        dropped_rows = self._spill.add(row)
        if dropped_rows:
            self._settled += len(dropped_rows)
            self._note_dropped(len(dropped_rows), dropped_rows[0].seq)
        return event

    def _note_dropped(self, count: int, first_seq: int) -> None:
        self._dropped += count
        self._log.warning(
            "outbox_full_dropped_oldest",
            dropped=count,
            first_seq=first_seq,
            last_seq=first_seq + count - 1,
            dropped_total=self._dropped,
            max_rows=self.max_rows,
            max_bytes=self.max_bytes,
            in_memory=self._write_error is not None,
        )

    def ack(self, seq: int) -> None:
        """Forget one event after the broker acknowledged it (PUBACK)."""
        self.ack_many((seq,))

    def ack_many(self, seqs: Iterable[int]) -> None:
        """Forget several acknowledged events in one transaction (one fsync for a whole window)."""
        wanted = [int(s) for s in seqs]
        in_memory, _ = self._spill.remove(wanted)
        if in_memory:
            # Delivered from memory: no longer lost if the process dies now.
            self._settled += len(in_memory)
            if self._reserve is not None:
                self._reserve.store(self._reservation(self._last_seq))
        wanted = [s for s in wanted if s not in in_memory and s not in self._acked_unstored]
        if not wanted:
            return
        try:
            removed, freed = self._store.delete(wanted)
        except sqlite3.IntegrityError:
            raise
        except (sqlite3.DatabaseError, OSError) as exc:
            # The disk refuses even a DELETE: remember the acks so this process does not send the
            # events again; the next write that succeeds deletes them (a restart before that
            # re-sends them: at least once, consumers dedupe by seq).
            if self._write_error is None:
                self._log.error(
                    "outbox_write_failed", path=str(self.path), error=f"{type(exc).__name__}: {exc}"
                )
                self._write_error = f"{type(exc).__name__}: {exc}"
            removed, freed = 0, 0
            for seq in wanted:
                size = self._store.payload_size(seq)
                if size is not None:
                    self._acked_unstored[seq] = size
                    removed += 1
                    freed += size
        self._depth -= removed
        self._bytes -= freed

    # -- reading -------------------------------------------------------------------------------

    def peek(self, limit: int, after_seq: int = 0) -> list[OutboxRow]:
        """Up to `limit` queued events with seq > after_seq, oldest first, without removing them."""
        limit = max(0, int(limit))
        skip = self._acked_unstored
        rows = self._store.rows_after(after_seq, limit + len(skip))
        queued = [OutboxRow(seq, topic, payload) for seq, topic, payload in rows if seq not in skip]
        if len(self._spill):
            spilled = self._spill.after(after_seq, limit)
            queued = sorted(
                queued + [OutboxRow(r.seq, r.topic, r.payload) for r in spilled], key=lambda r: r.seq
            )
        return queued[:limit]

    @property
    def depth(self) -> int:
        return self._depth + len(self._spill)

    @property
    def bytes(self) -> int:
        return self._bytes + self._spill.bytes

    @property
    def unstored(self) -> int:
        """Queued events held in memory because the disk refused them (lost if the process dies)."""
        return len(self._spill)

    @property
    def write_error(self) -> str | None:
        """Why the last write to disk failed; None once writes succeed again."""
        return self._write_error

    @property
    def last_seq(self) -> int:
        """The seq given to the latest event (0 when none was ever appended)."""
        return self._last_seq

    @property
    def dropped_total(self) -> int:
        """Events deleted unsent because the outbox was full, over the outbox's whole life."""
        return self._dropped

    def close(self) -> None:
        self._store.close()
        if len(self._spill):
            # Counted (kept across the restart by the seq file): the seq gap tells consumers.
            self._log.warning("outbox_unstored_lost", events=len(self._spill), last_seq=self._last_seq)
            self._dropped += len(self._spill)
            self._settled += len(self._spill)
            self._spill.clear()
            if self._reserve is not None:
                self._reserve.store(self._reservation(self._last_seq))
        if self._reserve is not None:
            self._reserve.close()
            self._reserve = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
