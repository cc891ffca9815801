"""msgspec serialisation of case events, plugged into the eventsourcing Mapper.

The library's default Mapper reads `vars(event)`, which frozen msgspec Structs do
not have; this mapper encodes the Struct itself with msgspec and keeps the
library's topic scheme, compressor and cipher, so stored rows stay readable by
the library's tools.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic


class UndecodableEventError(Exception):
    """A stored event could not be turned back into a domain event."""

    def __init__(self, originator_id: object, version: int, reason: str) -> None:
        super().__init__(f"stored event {originator_id} v{version} cannot be decoded: {reason}")
        self.originator_id = originator_id
        self.version = version


class MsgspecTranscoder(Transcoder):
    """JSON transcoder on msgspec, for plain values (dicts, lists, UUIDs, datetimes)."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes) -> Any:
        return self._decoder.decode(data)


@lru_cache(maxsize=256)
def _decoder_for(topic: str) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(resolve_topic(topic))


@lru_cache(maxsize=256)
def topic_of(cls: type) -> str:
    """The topic an event type is stored under (the library's scheme: module and class name)."""
    return get_topic(cls)


class CaseEventMapper(Mapper[Any]):
    """Maps frozen msgspec event Structs to StoredEvents and back."""

    def __init__(self, transcoder: Transcoder | None = None, **kwargs: Any) -> None:
        super().__init__(transcoder or MsgspecTranscoder(), **kwargs)
        self._encoder = msgspec.json.Encoder()

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = self._encoder.encode(domain_event)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=topic_of(type(domain_event)),
            state=state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        state = stored_event.state
        try:
            if self.cipher:
                state = self.cipher.decrypt(state)
            if self.compressor:
                state = self.compressor.decompress(state)
            event = _decoder_for(stored_event.topic).decode(state)
        except Exception as error:  # any failure here means the row is unreadable
            raise UndecodableEventError(
                stored_event.originator_id, stored_event.originator_version, str(error)
            ) from error
        if (event.originator_id, event.originator_version) != (
            stored_event.originator_id,
            stored_event.originator_version,
        ):
            raise UndecodableEventError(
                stored_event.originator_id,
                stored_event.originator_version,
                "payload names another stream or version",
            )
        return event
