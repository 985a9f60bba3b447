"""Keys derived from the one configured secret, and encryption at rest (webhook secrets, OAuth tokens).

Every use of `settings.secret_key` goes through `derive_key` with its own purpose label, so a key
that signs admin JWTs never doubles as the key that encrypts tokens. Encryption is AES-256-GCM; a
ciphertext looks like `v1.<base64url(nonce + ciphertext + tag)>` and may be bound to a context
(e.g. the row id) so that a ciphertext copied onto another row does not decrypt.

Changing OUIPOST_SECRET_KEY makes every stored ciphertext undecryptable (DecryptionError): webhook
secrets and OAuth tokens must then be set again.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ENCRYPTION_PURPOSE = "ouipost/encryption-at-rest/v1"
_VERSION = "v1"
_NONCE_BYTES = 12


class DecryptionError(Exception):
    """The ciphertext is malformed, was made with another secret key, or belongs to another context."""


def derive_key(secret_key: str, purpose: str, length: int = 32) -> bytes:
    """A key for one purpose, derived from the configured secret with HKDF-SHA256."""
    if not secret_key:
        raise ValueError("an empty secret key derives nothing")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(
        secret_key.encode()
    )


class Cipher:
    """AES-GCM with a key derived from the configured secret. Cheap to build; build one per use."""

    def __init__(self, secret_key: str, purpose: str = ENCRYPTION_PURPOSE) -> None:
        self._aead = AESGCM(derive_key(secret_key, purpose))

    def encrypt(self, plaintext: str, context: str = "") -> str:
        nonce = os.urandom(_NONCE_BYTES)  # random 96-bit nonces: safe far beyond our volumes
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, context: str = "") -> str:
        """The plaintext; DecryptionError when the token was not made by this key for this context."""
        version, _, body = token.partition(".")
        if version != _VERSION or not body:
            raise DecryptionError("not a ciphertext of this format")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
        except ValueError as exc:
            raise DecryptionError("malformed ciphertext") from exc
        if len(raw) <= _NONCE_BYTES:
            raise DecryptionError("malformed ciphertext")
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionError("the ciphertext does not match this key and context") from exc
