"""The API keys a server accepts: `auth.api_keys` and the named keys of `auth.keys_file`.

The keys file is TOML, one `[[keys]]` table per key; a key is never written in it in clear,
but as the hex of its SHA-256 (`sha256`) or as the name of an environment variable that
holds it (`env`):

    [[keys]]
    name = "team-a"
    sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    pages_per_day = 1000
    pages_per_month = 20000
    max_concurrent = 4

    [[keys]]
    name = "ops"
    env = "OCR_OPS_KEY"
    admin = true
    pages_per_day = 0          # 0: no limit for this key, whatever `[quotas]` says

A key's id stays the first 12 hex digits of its SHA-256 whatever its name: the Files and
Batch API own objects by it and usage is counted by it, so naming (or renaming) a key in the
file orphans nothing. The name is a label shown beside the id (`/v1/usage`, the access log).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator

from openai_ocr.errors import validation_message
from openai_ocr.settings import Settings

KEY_ID_DIGITS = 12


def digest(key: str) -> str:
    """The hex SHA-256 of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(key: str) -> str:
    """A short, non-reversible id of a key, for logs, owners, usage and rate-limit buckets."""
    return digest(key)[:KEY_ID_DIGITS]


class KeysFileError(ValueError):
    """The keys file cannot be used; the message names the file and the entry at fault."""


class KeyEntry(BaseModel):
    """One `[[keys]]` table of the keys file."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    env: str | None = Field(None, min_length=1, max_length=200)
    admin: bool = False
    pages_per_day: int | None = Field(None, ge=0)
    pages_per_month: int | None = Field(None, ge=0)
    max_concurrent: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_key(self) -> KeyEntry:
        if (self.sha256 is None) == (self.env is None):
            raise ValueError("give the key as exactly one of `sha256` or `env`")
        return self


class KeysFile(BaseModel):
    model_config = {"extra": "forbid"}

    keys: list[KeyEntry] = []


@dataclass(frozen=True)
class Key:
    """An accepted key: its SHA-256 (hex), name (None for a key of `auth.api_keys`), admin
    flag and own quotas (None: the `[quotas]` default; 0: no limit)."""

    digest: str
    name: str | None = None
    admin: bool = False
    pages_per_day: int | None = None
    pages_per_month: int | None = None
    max_concurrent: int | None = None

    @property
    def id(self) -> str:
        return self.digest[:KEY_ID_DIGITS]


def read_keys_file(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> list[Key]:
    """The keys of a keys file; KeysFileError naming the problem (unreadable, bad TOML, a bad
    entry, a duplicate name or key, an `env` variable unset or empty)."""
    environ = os.environ if environ is None else environ
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeysFileError(f"auth.keys_file {path}: {exc}") from None
    try:
        entries = KeysFile.model_validate(data).keys
    except ValidationError as exc:
        raise KeysFileError(f"auth.keys_file {path}: {validation_message(exc.errors(), whole='file')}") from None
    keys: list[Key] = []
    names: set[str] = set()
    digests: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"auth.keys_file {path}, key {number} ({entry.name})"
        if entry.sha256 is not None:
            hashed = entry.sha256.lower()
        else:
            value = environ.get(entry.env or "", "").strip()
            if not value:
                raise KeysFileError(f"{where}: the environment variable {entry.env} is unset or empty")
            hashed = digest(value)
        if entry.name in names:
            raise KeysFileError(f"{where}: the name is used twice")
        if hashed in digests:
            raise KeysFileError(f"{where}: the same key is listed twice")
        names.add(entry.name)
        digests.add(hashed)
        keys.append(Key(hashed, entry.name, entry.admin, entry.pages_per_day, entry.pages_per_month,
                        entry.max_concurrent))
    return keys


class KeyRing:
    """Every key a server accepts, by SHA-256; a presented key is found by hashing it and
    comparing with each in constant time (no early exit on a match)."""

    def __init__(self, keys: list[Key]) -> None:
        self.keys = keys
        self._by_id = {key.id: key for key in keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """`auth.api_keys` (admin where also in `auth.admin_keys`), then the keys file's
        (a key in both: the file's entry, with its name and quotas)."""
        admins = {digest(k.get_secret_value()) for k in settings.auth.admin_keys}
        from_file = read_keys_file(settings.auth.keys_file) if settings.auth.keys_file else []
        listed = {key.digest for key in from_file}
        plain = [Key(d, admin=d in admins) for d in dict.fromkeys(
            digest(k.get_secret_value()) for k in settings.auth.api_keys) if d not in listed]
        return cls([*plain, *from_file])

    @property
    def enabled(self) -> bool:
        """Whether keys are required (any is configured)."""
        return bool(self.keys)

    def find(self, given: str) -> Key | None:
        hashed = digest(given).encode()
        found: Key | None = None
        for key in self.keys:
            if hmac.compare_digest(hashed, key.digest.encode()):
                found = key
        return found

    def by_id(self, key_id: str | None) -> Key | None:
        return self._by_id.get(key_id) if key_id else None

    def name_of(self, key_id: str | None) -> str | None:
        key = self.by_id(key_id)
        return key.name if key is not None else None
