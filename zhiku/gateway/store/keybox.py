"""Channel keys at rest: Fernet encryption with a server secret.

The secret is ``ZHIKU_SECRET_KEY`` when set (any string; a non-Fernet value is stretched with HKDF), else
a random key generated once into ``data_dir/secret.key`` with mode 0600. Every process that shares a
gateway database must share the secret: set ``ZHIKU_SECRET_KEY`` when they do not share a data dir.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zhiku.config import Settings
from zhiku.errors import StartupError

_HKDF_INFO = b"zhiku gateway channel keys v1"
_PLACEHOLDERS = {"changeme", "change-me", "secret", "123456", "zhiku"}


class KeyBox:
    """Encrypts and decrypts channel keys; never logs or returns them."""

    def __init__(self, fernet_key: bytes) -> None:
        self._fernet = Fernet(fernet_key)

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise StartupError("a channel key cannot be decrypted with this server's secret: every gateway "
                               "process must use the same ZHIKU_SECRET_KEY (or data dir secret.key)") from None

    def decrypt_recent(self, token: str, max_age_seconds: int) -> str | None:
        """What :meth:`encrypt` sealed at most ``max_age_seconds`` ago; None when forged, altered or older
        (a console login cookie)."""
        try:
            return self._fernet.decrypt(token.encode(), ttl=max_age_seconds).decode()
        except (InvalidToken, UnicodeError):
            return None


def mask_key(key: str) -> str:
    """What admins see of a key: its first and last few characters."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:3]}…{key[-4:]}"


def fernet_key_from(secret: str) -> bytes:
    """``secret`` itself when it is a Fernet key, else a Fernet key derived from it."""
    try:
        if len(base64.urlsafe_b64decode(secret.encode())) == 32:
            return secret.encode()
    except (binascii.Error, ValueError):
        pass
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret.encode())
    return base64.urlsafe_b64encode(derived)


def _generated_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        if not key:
            raise StartupError(f"{path} is empty: delete it (channel keys must then be entered again) "
                               "or set ZHIKU_SECRET_KEY") from None
        return key
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as out:
        out.write(key + b"\n")
    return key


def open_keybox(settings: Settings) -> KeyBox:
    secret = settings.secret_key.strip()
    if secret:
        if settings.profile == "prod" and (len(secret) < 16 or secret.lower() in _PLACEHOLDERS):
            raise StartupError("ZHIKU_SECRET_KEY is a placeholder or shorter than 16 characters; "
                               "use a long random value, e.g. `python -c 'import secrets; "
                               "print(secrets.token_urlsafe(32))'`")
        return KeyBox(fernet_key_from(secret))
    return KeyBox(fernet_key_from(_generated_key(settings.secret_key_file).decode()))
