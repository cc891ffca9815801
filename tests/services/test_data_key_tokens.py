"""A data key's tokens: they open to the text sealed, every nonce is new, and a forked child never
reuses a nonce its parent drew (AES-GCM under one key must never see a nonce twice)."""

from __future__ import annotations

import base64
import os
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casedesk.services.privacy.customer_keys import _NONCE, DataKey, _b64, _nonces, _unb64, is_sealed

TEXTS = ["", "a", "Taro Yamada", "山田 太郎 090-1234-5678", "x" * 1000, "note with \"quotes\" and \\ and \n"]


def _opened(key: DataKey, token: str) -> str:
    return key.open(token.rsplit(".", 1)[1][:-2].encode())


def test_every_token_opens_to_the_text_it_sealed() -> None:
    key = DataKey(uuid.uuid4(), AESGCM.generate_key(256))
    for text in TEXTS[1:]:
        token = key.seal(text)
        assert is_sealed(token) and (len(text) < 5 or text not in token)
        assert _opened(key, token) == text
    assert key.seal("") == ""


def test_the_url_safe_base64_is_the_standard_one_without_padding() -> None:
    for n in range(64):
        raw = os.urandom(n)
        assert _b64(raw) == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        assert _unb64(_b64(raw)) == raw


def test_ten_thousand_seals_of_one_text_use_ten_thousand_nonces() -> None:
    key = DataKey(uuid.uuid4(), AESGCM.generate_key(256))
    nonces = {_unb64(key.seal("same text").rsplit(".", 1)[1][:-2])[:_NONCE] for _ in range(10_000)}
    assert len(nonces) == 10_000


def test_a_forked_child_draws_its_own_nonces() -> None:
    _nonces.take()  # the parent has a draw in hand
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next nonce, to the parent, and out
        try:
            os.write(write, _nonces.take())
        finally:
            os._exit(0)
    os.close(write)
    try:
        child = os.read(read, _NONCE)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert len(child) == _NONCE
    assert _nonces.take() != child  # without the fork hook both would take the same slice of one draw
