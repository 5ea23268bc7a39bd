"""The Databento API key: where it comes from, how it is checked, how it may be shown.

Sources, first found wins: the ``DATABENTO_API_KEY`` environment variable, a key file (path
from config), then a ``.env`` file (``DATABENTO_API_KEY=...``). A key is only ever shown
masked (first 8 characters, then ``***``): in logs, errors, metrics and reprs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "DATABENTO_API_KEY"
KEY_LENGTH = 32
KEY_PREFIX = "db-"
_KEY_CHARS = re.compile(r"^[A-Za-z0-9-]+$")


class ApiKeyError(ValueError):
    """A missing or malformed key. The message names the source, never the key."""


def mask_key(key: str) -> str:
    """How a key may appear anywhere: its first 8 characters, then ``***``. A malformed, short
    string shows at most a quarter of itself, so a mistyped key is not printed whole."""
    return key[: min(8, len(key) // 4)] + "***"


def check_key(key: str, source: str) -> str:
    """The key, stripped, if it looks like a Databento key; else ApiKeyError naming ``source``."""
    k = key.strip()
    if not k.startswith(KEY_PREFIX):
        raise ApiKeyError(f"API key from {source} does not start with {KEY_PREFIX!r} ({mask_key(k)})")
    if len(k) != KEY_LENGTH:
        raise ApiKeyError(f"API key from {source} has {len(k)} characters, expected {KEY_LENGTH} ({mask_key(k)})")
    if not _KEY_CHARS.match(k):
        raise ApiKeyError(f"API key from {source} has characters other than letters, digits and '-' ({mask_key(k)})")
    return k


@dataclass(frozen=True)
class ApiKey:
    """A validated key that will not print itself."""

    value: str
    source: str

    def __repr__(self) -> str:
        return f"ApiKey({mask_key(self.value)}, from {self.source})"

    __str__ = __repr__

    @property
    def masked(self) -> str:
        return mask_key(self.value)


def _from_dotenv(path: Path) -> str | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        if line.startswith(ENV_VAR + "="):
            return line.split("=", 1)[1].strip().strip("'\"")
    return None


def load_key(key_file: str | os.PathLike[str] | None = None, dotenv: str | os.PathLike[str] | None = ".env",
             environ: dict[str, str] | None = None) -> ApiKey:
    """The first key found (environment, key file, ``.env``), validated."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR, "").strip():
        return ApiKey(check_key(env[ENV_VAR], f"${ENV_VAR}"), f"${ENV_VAR}")
    if key_file is not None:
        p = Path(key_file).expanduser()
        try:
            raw = p.read_text()
        except OSError as e:
            raise ApiKeyError(f"API key file {p}: {e.strerror or e}") from None
        return ApiKey(check_key(raw, str(p)), str(p))
    if dotenv is not None:
        p = Path(dotenv)
        found = _from_dotenv(p)
        if found:
            return ApiKey(check_key(found, str(p)), str(p))
    raise ApiKeyError(f"no Databento API key: set ${ENV_VAR}, or feed.key_file in the config, or {ENV_VAR}= in .env")


__all__ = ["ApiKey", "ApiKeyError", "ENV_VAR", "check_key", "load_key", "mask_key"]
