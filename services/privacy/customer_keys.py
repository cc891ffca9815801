"""Per-customer data keys: personal strings sealed as self-describing tokens, and opened again.

A personal string (domain/personal_fields.py) is stored as

    {{cd1.<key id, 16 bytes b64url>.<nonce (12 bytes) + AES-GCM ciphertext and tag, b64url>}}

under the customer's own 256-bit data key (AES-GCM, the `cryptography` package;
the key id is the associated data, so a token cannot be moved under another key).
The token names its key, so any bytes that carry it (an event, a case file, a
timeline, a stored answer) are opened the same way, at the edge where they leave
casedesk: HTTP answers, the case stream, webhooks, the CLI. Nothing stored ever
holds the clear text, so destroying the key erases it everywhere at once;
a token whose key is destroyed reads "[erased]".

Data keys are kept in `customer_keys` wrapped (AES-GCM) by the master key,
CASEDESK_MASTER_KEY, which never enters the database. Each process caches
opened keys; an erasure NOTIFYs `customer_key_erased` and every process that
LISTENs forgets the key at once.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import hashlib
import itertools
import os
import re
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg
import msgspec
import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casedesk.domain.events import CaseEvent
from casedesk.domain.personal_fields import has_personal_fields, with_personal
from casedesk.services.turn_taking import give_way

log = structlog.get_logger("casedesk.privacy")

ERASED = "[erased]"
UNREADABLE = "[unreadable]"  # a token under a key the master key cannot open, or a tampered one
ERASED_CHANNEL = "customer_key_erased"
KEYS_TRUSTED_SECONDS = 60.0
TOKEN_PREFIX = "{{cd1."
_TOKEN = re.compile(r"\{\{cd1\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{38,})\}\}")
_TOKEN_BYTES = re.compile(rb"\{\{cd1\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{38,})\}\}")
_NONCE = 12
_TOKEN_HEAD = len(TOKEN_PREFIX) + 22 + 1  # "{{cd1." + the key id (16 bytes, base64) + "."
KEYS_PER_TURN = 32  # keys made, opened or sealed under between two hand-backs of the loop
OPENED_PER_TURN = 64  # tokens opened between two hand-backs of the loop (about half a millisecond)
_NAMES_KEPT = 100_000  # token key names parsed; past that the memory starts again (names come from text too)
KEYS_KEPT_OPEN = 1_024  # data keys kept ready to seal and open (AES-GCM objects); the rest as raw bytes


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64(raw: bytes) -> str:
    # binascii straight: base64.urlsafe_b64encode's Python layers were a third of a seal.
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


class _Nonces:
    """Random 96-bit nonces, drawn from the OS 512 at a time (one getrandom call, not one a seal).

    Slices of one draw are as random as separate draws; a forked child drops what its parent
    drew, so two processes never share a nonce."""

    __slots__ = ("_at", "_drawn")
    _AT_ONCE = 512

    def __init__(self) -> None:
        self._drawn, self._at = b"", 0

    def forget(self) -> None:
        self._drawn, self._at = b"", 0

    def take(self) -> bytes:
        at = self._at
        if at + _NONCE > len(self._drawn):
            self._drawn, at = os.urandom(_NONCE * self._AT_ONCE), 0
        self._at = at + _NONCE
        return self._drawn[at:at + _NONCE]


_nonces = _Nonces()
os.register_at_fork(after_in_child=_nonces.forget)


def _unb64(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return binascii.a2b_base64(raw.translate(_FROM_URLSAFE) + b"=" * (-len(raw) % 4))


def _json_escaped(text: str) -> bytes:
    return msgspec.json.encode(text)[1:-1]


def is_sealed(text: str) -> bool:
    """One whole token, nothing around it (text that only starts like one is sealed as any text)."""
    return text.startswith(TOKEN_PREFIX) and _TOKEN.fullmatch(text) is not None


def master_cipher(master_key: str) -> AESGCM:
    """The master key as an AES-256 key (any string: it is hashed to 32 bytes)."""
    return AESGCM(hashlib.sha256(b"casedesk master key:" + master_key.encode()).digest())


class DataKey:
    """One customer's data key, opened: seals strings under it."""

    __slots__ = ("_aead", "_associated", "_prefix", "key_id")

    def __init__(self, key_id: UUID, key: bytes) -> None:
        self.key_id = key_id
        self._aead = AESGCM(key)
        self._associated = key_id.bytes  # (UUID.bytes is computed anew on every use)
        self._prefix = f"{TOKEN_PREFIX}{_b64(key_id.bytes)}."

    def seal(self, text: str) -> str:
        if not text or is_sealed(text):
            return text  # already sealed (copied from state), or nothing to hide
        nonce = _nonces.take()
        return f"{self._prefix}{_b64(nonce + self._aead.encrypt(nonce, text.encode(), self._associated))}}}}}"

    def open(self, sealed_b64: bytes) -> str:
        sealed = _unb64(sealed_b64)
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._associated).decode()


# Get or make each customer's live key and link the cases to them, in one statement.
_ENSURE = """
WITH wanted AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::bytea[]) AS w(customer_id, case_id, key_id, wrapped)
), made AS (
    INSERT INTO customer_keys (key_id, customer_id, wrapped)
    SELECT DISTINCT ON (customer_id) key_id, customer_id, wrapped FROM wanted ORDER BY customer_id
    ON CONFLICT (customer_id) WHERE erased_at IS NULL DO NOTHING
    RETURNING customer_id, key_id, wrapped
), linked AS (
    INSERT INTO customer_cases (case_id, customer_id) SELECT DISTINCT case_id, customer_id FROM wanted
    ON CONFLICT DO NOTHING
)
SELECT customer_id, key_id, wrapped FROM made
UNION ALL
SELECT customer_id, key_id, wrapped FROM customer_keys WHERE customer_id = ANY($1::text[]) AND erased_at IS NULL
"""


class CustomerKeys:
    """The deployment's customer keys: seal events as they are stored, open tokens as they leave.

    `sealing` False (CASEDESK_SEAL_PERSONAL_DATA=0, the bench's reference run only)
    stores personal data in the clear; tokens already stored still open.

    What it remembers per key and per case is held as ints, bytes and floats, which Python's
    cyclic garbage collector does not track: a breach list makes a key per line, and as UUID,
    DataKey and AES-GCM objects 40,000 keys were 150,000 tracked objects that every full
    collection walked, pauses of 20-60 ms in the API's loop (issue 15). Only the last
    KEYS_KEPT_OPEN keys used are kept as DataKey objects.
    """

    def __init__(self, pool: asyncpg.Pool, master_key: str, *, sealing: bool = True) -> None:
        self._pool = pool
        self._master = master_cipher(master_key)
        self.sealing = sealing
        # Keys and cases by their UUID's int (untracked, unlike a UUID).
        self._live: dict[str, int] = {}  # customer id -> the key new data is sealed under
        self._linked: set[int] = set()  # cases known to be in customer_cases
        self._secrets: dict[int, bytes | None] = {}  # key id -> the opened key, None when erased or unreadable
        self._ready: dict[int, DataKey] = {}  # the last KEYS_KEPT_OPEN keys used, ready (oldest first)
        self._unopenable: set[int] = set()  # kept, but wrapped under another master key
        self._names: dict[bytes, int] = {}  # a token's key name (base64) -> the key id it names
        # When each key was last read from the table: a process whose LISTEN connection was lost
        # (and with it an erasure's NOTIFY) reads its keys again after KEYS_TRUSTED_SECONDS.
        self._read_at: dict[int, float] = {}

    # --- keys -------------------------------------------------------------------------------
    def _wrap(self, key_id: UUID, key: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._master.encrypt(nonce, key, key_id.bytes)

    def _unwrap(self, key_id: UUID, wrapped: bytes | None) -> bytes | None:
        if wrapped is None:
            return None
        try:
            return self._master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], key_id.bytes)
        except InvalidTag:
            # Another process's CASEDESK_MASTER_KEY: say so (its data reads "[unreadable]", not "[erased]").
            log.warning("customer_key_not_opened", key_id=str(key_id),
                        hint="every process must have the same CASEDESK_MASTER_KEY")
            self._unopenable.add(key_id.int)
            return None

    def _key(self, key_id: int) -> DataKey | None:
        """The key ready to seal and open, None when erased or unreadable."""
        key = self._ready.get(key_id)
        if key is None:
            secret = self._secrets.get(key_id)
            if secret is None:
                return None
            if len(self._ready) >= KEYS_KEPT_OPEN:
                del self._ready[next(iter(self._ready))]
            key = self._ready[key_id] = DataKey(UUID(int=key_id), secret)
        return key

    def _live_key(self, customer_id: str) -> DataKey | None:
        key_id = self._live.get(customer_id)
        return None if key_id is None else self._key(key_id)

    def _fresh(self, key_id: int, now: float) -> bool:
        return now - self._read_at.get(key_id, -KEYS_TRUSTED_SECONDS) < KEYS_TRUSTED_SECONDS

    async def _ensure(self, pairs: Sequence[tuple[str, UUID]]) -> None:
        """Make sure each (customer, case) has a live key in memory and the case is linked."""
        now = time.monotonic()
        wanted = [(c, k) for c, k in dict.fromkeys(pairs)
                  if (live := self._live.get(c)) is None or k.int not in self._linked or not self._fresh(live, now)]
        for _ in range(3):  # a concurrent erasure or first key elsewhere: read again
            if not wanted:
                return
            new_ids = [uuid4() for _ in wanted]
            wrapped: list[bytes] = []
            for n, key_id in enumerate(new_ids, 1):  # a breach list's chunk makes 2,000 keys: ~100 ms at once
                wrapped.append(self._wrap(key_id, AESGCM.generate_key(256)))
                if n % KEYS_PER_TURN == 0:
                    await give_way()
            rows = await self._pool.fetch(_ENSURE, [c for c, _ in wanted], [k for _, k in wanted], new_ids, wrapped)
            for n, row in enumerate(rows, 1):
                if n % KEYS_PER_TURN == 0:
                    await give_way()
                key_id: UUID = row["key_id"]
                secret = self._unwrap(key_id, bytes(row["wrapped"]))
                if secret is not None:
                    self._live[row["customer_id"]] = key_id.int
                    self._secrets[key_id.int] = secret
                    self._read_at[key_id.int] = now
            self._linked.update(k.int for c, k in wanted if c in self._live)
            wanted = [(c, k) for c, k in wanted if c not in self._live or not self._fresh(self._live[c], now)]
        raise RuntimeError("no live customer key could be made or opened: is CASEDESK_MASTER_KEY the same in every"
                           " process?")

    async def seal(self, customer_id: str, events: Sequence[CaseEvent]) -> list[CaseEvent]:
        """The events with their personal strings sealed under the customer's key."""
        if not self.sealing or not events:
            return list(events)
        key_id = self._live.get(customer_id)
        if (key_id is not None and self._fresh(key_id, time.monotonic())
                and all(e.originator_id.int in self._linked for e in events)
                and (key := self._key(key_id)) is not None):
            # The usual command: its customer's key in memory, its case linked; no round trip, no lists.
            # (A command's answer is made from the events as decided: it has no token to open.)
            return [with_personal(e, key.seal) if has_personal_fields(e) else e for e in events]
        return (await self.seal_many([(customer_id, events)]))[0]

    async def seal_many(self, batches: Sequence[tuple[str, Sequence[CaseEvent]]]) -> list[list[CaseEvent]]:
        """Several customers' events at once (one round trip for all keys not yet in memory)."""
        if not self.sealing:
            return [list(events) for _, events in batches]
        # Only events with personal fields need a key (an erasure's own event must not make a new one).
        await self._ensure([(c, e.originator_id) for c, events in batches for e in events if has_personal_fields(e)])
        sealed: list[list[CaseEvent]] = []
        for n, (customer_id, events) in enumerate(batches, 1):
            if n % KEYS_PER_TURN == 0:
                await give_way()
            key = self._live_key(customer_id)
            sealed.append([with_personal(e, key.seal) if key is not None and has_personal_fields(e) else e
                           for e in events])
        return sealed

    # --- opening ----------------------------------------------------------------------------
    async def _load(self, key_ids: set[int]) -> None:
        now = time.monotonic()
        # Unknown keys, and opened ones not read for a while (erased keys stay erased: never again).
        missing = [k for k in key_ids
                   if k not in self._secrets or (self._secrets[k] is not None and not self._fresh(k, now))]
        if not missing:
            return
        rows = {r[0].int: r[1] for r in await self._pool.fetch(
            "SELECT key_id, wrapped FROM customer_keys WHERE key_id = ANY($1::uuid[])",
            [UUID(int=k) for k in missing])}
        for key_id in missing:
            wrapped = rows.get(key_id)
            if wrapped is None or self._secrets.get(key_id) is None:
                self._secrets[key_id] = self._unwrap(UUID(int=key_id), None if wrapped is None else bytes(wrapped))
            # (a key still kept is still the same key: the one already opened is kept)
            if wrapped is None:  # erased, and this process missed the NOTIFY: as if it had heard it
                self.forget([c for c, live in self._live.items() if live == key_id], [UUID(int=key_id)])
            self._read_at[key_id] = now

    def _key_id(self, name: bytes) -> int:
        """The key id a token names (its base64 form), parsed once per key."""
        key_id = self._names.get(name)
        if key_id is None:
            if len(self._names) >= _NAMES_KEPT:
                self._names.clear()
            key_id = self._names[name] = int.from_bytes(_unb64(name), "big")
        return key_id

    def _open(self, name: bytes, sealed: bytes) -> str:
        key_id = self._key_id(name)
        key = self._key(key_id)
        if key is None:
            return UNREADABLE if key_id in self._unopenable else ERASED
        try:
            return key.open(sealed)
        except (InvalidTag, ValueError):
            return UNREADABLE

    async def open_json(self, body: bytes) -> bytes:
        """JSON bytes with every token replaced by its text, JSON-escaped ("[erased]" for a destroyed key).

        OPENED_PER_TURN tokens at a time, found, keyed and opened, giving way between: a 5,000-event
        history holds some 5,000 tokens in 3 MB, and finding them all at once alone took 20-60 ms."""
        if b"{{cd1." not in body:
            return body
        found = _TOKEN_BYTES.finditer(body)
        opened, last = bytearray(), 0
        while tokens := list(itertools.islice(found, OPENED_PER_TURN)):
            await self._load({self._key_id(m[1]) for m in tokens})
            for m in tokens:
                opened += body[last:m.start()]
                opened += _json_escaped(self._open(m[1], m[2]))
                last = m.end()
            if len(tokens) == OPENED_PER_TURN:
                await give_way()
        opened += body[last:]
        return bytes(opened)

    async def open_text(self, text: str) -> str:
        """Plain text with every token replaced by its text."""
        if TOKEN_PREFIX not in text:
            return text
        await self._load({self._key_id(m[1].encode()) for m in _TOKEN.finditer(text)})
        return _TOKEN.sub(lambda m: self._open(m[1].encode(), m[2].encode()), text)

    def read_keys_afresh(self) -> None:
        """Read every key from the table again before trusting it (a process that hears no NOTIFY
        between its reads: the history process, once per document)."""
        self._read_at.clear()

    # --- erasure ----------------------------------------------------------------------------
    def forget(self, customer_ids: Sequence[str], key_ids: Sequence[UUID]) -> None:
        """This process drops the customers' keys (an erasure here or, by NOTIFY, elsewhere)."""
        for customer_id in customer_ids:
            self._live.pop(customer_id, None)
        for key_id in key_ids:
            self._secrets[key_id.int] = None
            self._ready.pop(key_id.int, None)

    def heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        told = msgspec.json.decode(payload)
        self.forget([told["customer_id"]], [UUID(k) for k in told["key_ids"]])

    @contextlib.asynccontextmanager
    async def listening(self, dsn: str) -> AsyncIterator[None]:
        """LISTEN for erasures in other processes while the context is open, on a connection of its own
        (never one a pool's requests or workers need), connected again when lost."""
        task = self.start_listening(dsn)
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def start_listening(self, dsn: str) -> asyncio.Task[None]:
        """The LISTEN task (cancel it to stop)."""
        return asyncio.create_task(self._listen(dsn), name="customer-key-erasures")

    async def _listen(self, dsn: str) -> None:
        from casedesk.services.store.database import create_pool

        while True:
            try:
                pool = await create_pool(dsn, min_size=0, max_size=1)
                try:
                    async with pool.acquire() as conn:
                        lost = asyncio.Event()
                        conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                        await conn.add_listener(ERASED_CHANNEL, self.heard)
                        try:
                            # Keys read before this LISTEN could have missed an erasure: read them again.
                            self._read_at.clear()
                            await lost.wait()
                        finally:
                            with contextlib.suppress(Exception):
                                await conn.remove_listener(ERASED_CHANNEL, self.heard)
                finally:
                    await pool.close()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: keys are read again after KEYS_TRUSTED_SECONDS anyway
                log.warning("customer_key_listener_lost")
            await asyncio.sleep(1.0)


async def destroy_keys(conn: asyncpg.Connection, customer_id: str, at: datetime, by: str,
                       reason: str) -> list[UUID]:
    """Destroy the customer's live keys (the wrapped key is overwritten) and tell every process."""
    rows = await conn.fetch(
        "UPDATE customer_keys SET wrapped = NULL, erased_at = $2, erased_by = $3, erasure_reason = $4"
        " WHERE customer_id = $1 AND erased_at IS NULL RETURNING key_id", customer_id, at, by, reason)
    key_ids = [r[0] for r in rows]
    if key_ids:
        await conn.execute("SELECT pg_notify($1, $2)", ERASED_CHANNEL, msgspec.json.encode(
            {"customer_id": customer_id, "key_ids": [str(k) for k in key_ids]}).decode())
    return key_ids


async def cases_of(conn: asyncpg.Connection | asyncpg.Pool, customer_id: str) -> list[UUID]:
    """The customer's cases whose personal data was ever sealed (or linked by the sealing epoch)."""
    return [r[0] for r in await conn.fetch(
        "SELECT case_id FROM customer_cases WHERE customer_id = $1 ORDER BY case_id", customer_id)]


async def link_cases(conn: asyncpg.Connection, customer_ids: Sequence[str], case_ids: Sequence[UUID]) -> None:
    await conn.execute(
        "INSERT INTO customer_cases (case_id, customer_id) SELECT * FROM unnest($1::uuid[], $2::text[])"
        " ON CONFLICT DO NOTHING", list(case_ids), list(customer_ids))


async def erasure_of(conn: asyncpg.Connection | asyncpg.Pool, customer_id: str) -> tuple[bool, datetime | None]:
    """(any key ever made for the customer, when their keys were last erased)."""
    row = await conn.fetchrow(
        "SELECT count(*) > 0, max(erased_at) FROM customer_keys WHERE customer_id = $1", customer_id)
    return bool(row[0]), row[1]


async def has_live_key(conn: asyncpg.Connection | asyncpg.Pool, customer_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM customer_keys WHERE customer_id = $1 AND erased_at IS NULL)", customer_id))


async def with_live_key(conn: asyncpg.Connection | asyncpg.Pool, customer_ids: Sequence[str]) -> list[str]:
    """Those of the customers who have a live key (data not erased), in id order."""
    return [r[0] for r in await conn.fetch(
        "SELECT customer_id FROM customer_keys WHERE erased_at IS NULL AND customer_id = ANY($1::text[])"
        " ORDER BY customer_id", list(customer_ids))]
