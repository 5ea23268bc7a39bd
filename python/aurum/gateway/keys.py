"""The gateway's API keys, looked up the way the CRAM check needs them: by bucket (a key's
last 5 characters, which the client sends in the clear after the hash)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from aurum.apikey import mask_key
from aurum.gateway.control import AuthRequest


class GatewayError(Exception):
    """A start-up problem, reported as one line."""


class KeyStore:
    """API keys by bucket (their last 5 characters), as the CRAM check looks them up."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._buckets: dict[str, list[str]] = {}
        for key in keys:
            self.add(key)

    @classmethod
    def load(cls, key_file: Path | None, env_value: str | None) -> KeyStore:
        keys: list[str] = []
        if key_file is not None:
            try:
                text = Path(key_file).read_text()
            except OSError as e:
                raise GatewayError(f"cannot read key file {key_file}: {e.strerror}") from None
            keys += [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
        if env_value:
            keys += [k.strip() for k in env_value.split(",") if k.strip()]
        return cls(keys)

    def add(self, key: str) -> None:
        key = key.strip()
        if len(key) < 6 or any(c in key for c in "|=\n "):
            raise ValueError(f"API key {mask_key(key)} is malformed (too short or has separators)")
        bucket = self._buckets.setdefault(key[-5:], [])
        if key not in bucket:
            bucket.append(key)

    def remove(self, key: str) -> bool:
        bucket = self._buckets.get(key.strip()[-5:], [])
        if key.strip() in bucket:
            bucket.remove(key.strip())
            return True
        return False

    def match(self, challenge: str, request: AuthRequest) -> str | None:
        for key in self._buckets.get(request.bucket, []):
            if request.verify(challenge, key):
                return key
        return None

    def __len__(self) -> int:
        return sum(map(len, self._buckets.values()))


__all__ = ["GatewayError", "KeyStore"]
