"""The card processor's HTTP client: one call, and what its answer means.

A call ends one of three ways (CONTRACT.md "Effects"): applied (2xx: the
processor's reference and time), refused for good (4xx other than 408, 409
and 429), or worth sending again (`ProcessorUnavailable`: a timeout, a
refused or dropped connection, 5xx, 408, 409, 429; `retry_after` when the
processor said how long to wait). The sender retries; this module never does.
"""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import msgspec

from casedesk.domain.processor_instructions import is_permanent_refusal


class Applied(msgspec.Struct, frozen=True, kw_only=True):
    """The processor applied the call: its reference for it, and when."""

    reference: str
    at: datetime


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """The processor will never apply the call as sent."""

    status: int
    code: str
    reason: str


class ProcessorUnavailable(Exception):
    """No answer worth keeping: send the same call again later."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class _Answer(msgspec.Struct, kw_only=True):
    token: str = ""
    created_time: datetime | None = None


class _Error(msgspec.Struct, kw_only=True):
    error_code: str = ""
    error_message: str = ""


_decode_answer = msgspec.json.Decoder(_Answer).decode
_decode_error = msgspec.json.Decoder(_Error).decode
RETRY_AFTER_MAX = 300.0


class ProcessorClient:
    """Calls the processor at `url` with basic auth; one aiohttp session, kept open."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._authorization = aiohttp.encode_basic_auth(user, password)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout,
                                                  headers={"Authorization": self._authorization})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, path: str, body: bytes) -> Applied | Refused:
        """POST `body` (JSON with its token) to `path`; raise ProcessorUnavailable to be sent again."""
        try:
            async with self._open().post(self.url + path, data=body, allow_redirects=False,
                                         headers={"Content-Type": "application/json"}) as answer:
                payload = await answer.read()
                status, retry_after = answer.status, answer.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise ProcessorUnavailable(f"{type(error).__name__}: {error}") from error
        if 200 <= status < 300:
            return _applied(payload)
        if is_permanent_refusal(status):
            said = _error(payload)
            return Refused(status=status, code=said.error_code or f"http_{status}",
                           reason=said.error_message or "refused without a reason")
        raise ProcessorUnavailable(f"HTTP {status}", _seconds(retry_after))


def _applied(payload: bytes) -> Applied:
    try:
        answer = _decode_answer(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        # Applied (2xx) but unreadable: asking again with the same token returns the answer again.
        raise ProcessorUnavailable(f"unreadable answer: {error}") from error
    return Applied(reference=answer.token, at=answer.created_time or datetime.now(UTC))


def _error(payload: bytes) -> _Error:
    try:
        return _decode_error(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _Error()


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is taken as "soon"), capped."""
    if retry_after is None:
        return None
    try:
        return min(max(float(retry_after), 0.0), RETRY_AFTER_MAX)
    except ValueError:
        return None


def retry_hook(error: Exception) -> bool | float:
    """stamina's `on`: retry a ProcessorUnavailable, after Retry-After when the processor gave one."""
    if not isinstance(error, ProcessorUnavailable):
        return False
    return error.retry_after if error.retry_after is not None else True


__all__ = ["Applied", "ProcessorClient", "ProcessorUnavailable", "Refused", "retry_hook"]
