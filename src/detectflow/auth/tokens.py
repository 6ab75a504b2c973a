"""API key strings: random, shown once, stored as SHA-256, identified by a prefix of that hash."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["KEY_PREFIX", "new_key", "digest_of", "key_id_of", "parse_bearer"]

#: Every key starts with this (secret scanners can find leaked ones).
KEY_PREFIX = "dfk_"
#: Random bytes in a key (256 bits).
KEY_BYTES = 32
#: Hex digits of the SHA-256 that name a key (its id; not secret).
KEY_ID_DIGITS = 20


def new_key() -> str:
    """A new random key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def digest_of(key: str) -> str:
    """The SHA-256 of a key, hex: what is stored.

    A plain hash is enough: the key is 256 random bits, so it cannot be guessed from its hash.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(digest: str) -> str:
    """A key's id, from its digest."""
    return digest[:KEY_ID_DIGITS]


def parse_bearer(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None when it is absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(KEY_PREFIX) or len(value) > 200 or " " in value:
        return None
    return value
