"""`JetStreamJournalStore`: the journal in the hub's JetStream stream (replicated on a hub cluster).

Why a stream with expected-sequence writes: entry N is stream message N (one subject, nothing else in
the stream, no deletes or purges allowed). An append publishes with `Nats-Expected-Last-Sequence: N-1`,
so the stream's leader stores it only while N-1 is still the last message; a second writer that planned
from the same balance gets "wrong last sequence" (`ledger_conflict`), reloads, and sees what the winner
spent: no double spend, on one hub or across a cluster. With R3 the leader acknowledges only once a
majority holds the message, so losing one hub loses no acknowledged entry and the stream elects a new
leader and goes on. A publish retried after its acknowledgement was lost finds its own entry stored at
that sequence (same id) and succeeds without storing it twice; `Nats-Msg-Id` (the entry's id) also lets
the stream drop such a duplicate within its duplicate window.

On an allowlisted hub the hub creates the stream itself (`agora.transport.hub.ensure_ledger_stream`) and
only its admin DIDs (the hub's ledger service) may touch it: members never write the journal directly.
The store uses a connection it is given and never closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from agora.errors import AgoraError
from agora.ledger.interfaces import Entry
from agora.transport.hub import ensure_ledger_stream
from agora.transport.hub_config import DEFAULT_LEDGER_STREAM, LEDGER_SUBJECT
from agora.transport.nats_errors import map_nats_error

WRONG_LAST_SEQUENCE = 10071  # JSStreamWrongLastSequenceErrF
_READ_CONCURRENCY = 64


class JetStreamJournalStore:
    """`JournalStore` on the stream `stream` of the hub `nc` is connected to.

    `create`: make the stream when it is missing (an open hub, tests); an allowlisted hub makes it
    itself. `replicas` applies only when this store creates it.
    """

    def __init__(
        self,
        nc: NatsClient,
        stream: str = DEFAULT_LEDGER_STREAM,
        *,
        subject: str = LEDGER_SUBJECT,
        replicas: int = 1,
        create: bool = True,
        timeout: float = 5.0,
    ) -> None:
        self._nc = nc
        self.stream = stream
        self.subject = subject
        self._replicas = replicas
        self._create = create
        self._timeout = timeout
        self._js_handle: JetStreamContext | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def _js(self) -> JetStreamContext:
        if self._closed:
            raise AgoraError("store_closed", "the ledger journal store was closed")
        if self._js_handle is not None:
            return self._js_handle
        async with self._lock:
            if self._js_handle is None:
                js = self._nc.jetstream(timeout=self._timeout)
                try:
                    if self._create:
                        await ensure_ledger_stream(js, self.stream, replicas=self._replicas, subject=self.subject)
                    else:
                        await js.stream_info(self.stream)
                except nats.js.errors.NotFoundError:
                    raise AgoraError(
                        "hub_unreachable",
                        f"the hub has no ledger stream {self.stream!r}",
                        hint="An allowlisted hub creates it at start (HubConfig.ledger_stream); a clustered hub "
                        "once its peers are up.",
                    ) from None
                except Exception as e:
                    raise map_nats_error(e, f"ledger stream {self.stream}") from e
                self._js_handle = js
            return self._js_handle

    async def append(self, entry: Entry, expected_seq: int) -> None:
        if entry.seq != expected_seq + 1:
            raise AgoraError("ledger_conflict", f"entry {entry.seq} cannot follow entry {expected_seq}")
        js = await self._js()
        headers = {"Nats-Expected-Last-Sequence": str(expected_seq), "Nats-Msg-Id": entry.id}
        try:
            ack = await js.publish(self.subject, entry.encode(), stream=self.stream, headers=headers)
        except nats.js.errors.APIError as e:
            if e.err_code == WRONG_LAST_SEQUENCE:
                stored = await self._get(js, entry.seq)
                if stored is not None and stored.id == entry.id:
                    return  # our own earlier publish, whose acknowledgement was lost: stored once, done
                raise AgoraError(
                    "ledger_conflict", f"another writer appended after entry {expected_seq} first"
                ) from None
            raise map_nats_error(e, f"appending entry {entry.seq}") from e
        except Exception as e:
            raise map_nats_error(e, f"appending entry {entry.seq}") from e
        if ack.seq != entry.seq:
            raise AgoraError(
                "ledger_corrupt",
                f"the stream stored entry {entry.seq} as message {ack.seq}: the stream holds other messages",
                details={"seq": entry.seq, "stream_seq": ack.seq},
            )

    async def _get(self, js: JetStreamContext, seq: int) -> Entry | None:
        try:
            msg = await js.get_msg(self.stream, seq)
        except nats.js.errors.NotFoundError:
            return None
        except Exception as e:
            raise map_nats_error(e, f"reading entry {seq}") from e
        entry = Entry.decode(bytes(msg.data or b""))
        if entry.seq != seq:
            raise AgoraError("ledger_corrupt", f"stream message {seq} holds entry {entry.seq}", details={"seq": seq})
        return entry

    async def _last_seq(self, js: JetStreamContext) -> int:
        try:
            info = await js.stream_info(self.stream)
        except Exception as e:
            raise map_nats_error(e, f"ledger stream {self.stream}") from e
        state: Any = info.state
        return int(state.last_seq or 0)

    async def read(self, since_seq: int = 0, limit: int = 1000) -> list[Entry]:
        js = await self._js()
        last = await self._last_seq(js)
        start, stop = max(0, since_seq) + 1, min(last, max(0, since_seq) + max(0, limit))
        if stop - start + 1 > _READ_CONCURRENCY:
            return await self._stream_read(js, start, stop)
        out: list[Entry] = []
        for first in range(start, stop + 1, _READ_CONCURRENCY):
            seqs = range(first, min(stop, first + _READ_CONCURRENCY - 1) + 1)
            got = await asyncio.gather(*(self._get(js, s) for s in seqs))
            for seq, entry in zip(seqs, got, strict=True):
                if entry is None:
                    raise AgoraError("ledger_corrupt", f"the stream lost entry {seq}", details={"seq": seq})
                out.append(entry)
        return out

    async def _stream_read(self, js: JetStreamContext, start: int, stop: int) -> list[Entry]:
        """Entries `start..stop` through one ordered consumer (a long range: one request per entry would be
        slow); the consumer is deleted when done."""
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
        try:
            sub = await js.subscribe(self.subject, stream=self.stream, ordered_consumer=True, config=config)
        except Exception as e:
            raise map_nats_error(e, f"reading entries {start}..{stop}") from e
        out: list[Entry] = []
        try:
            for seq in range(start, stop + 1):
                try:
                    msg = await sub.next_msg(timeout=self._timeout)
                except Exception as e:
                    raise map_nats_error(e, f"reading entry {seq}") from e
                entry = Entry.decode(bytes(msg.data or b""))
                if entry.seq != seq:
                    raise AgoraError(
                        "ledger_corrupt", f"the stream gave entry {entry.seq} where {seq} was due", details={"seq": seq}
                    )
                out.append(entry)
        finally:
            with contextlib.suppress(Exception):  # the consumer is ephemeral: the server drops it anyway
                await sub.unsubscribe()
        return out

    async def last(self) -> Entry | None:
        js = await self._js()
        last = await self._last_seq(js)
        return None if last == 0 else await self._get(js, last)

    async def close(self) -> None:
        self._closed = True


__all__ = ["DEFAULT_LEDGER_STREAM", "LEDGER_SUBJECT", "JetStreamJournalStore"]
