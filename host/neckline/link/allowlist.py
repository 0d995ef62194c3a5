"""The wearers this host talks to: a small JSON file in the user's config directory.

BlueZ keeps the bonds (the keys) itself; this file only lists addresses the user paired or named
on purpose, so that `neckline run` connects to them and to nothing else nearby. It holds no
secret, but who wears a Neckline is personal, so the file is created owner-only (0600, in a
0700 directory) and replaced atomically.

    {"version": 1, "wearers": [{"address": "C0:DE:00:00:00:01", "name": "Neckline-0001",
                                "added_utc": "2026-01-01T12:00:00+00:00"}]}
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from neckline.errors import ConfigError
from neckline.paths import config_file, ensure_private_dir

FILE_NAME = "wearers.json"
VERSION = 1
_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


def normalise_address(address: str) -> str:
    """Upper-case colon form; ValueError for anything that is not a Bluetooth address."""
    value = address.strip().upper().replace("-", ":")
    if not _ADDRESS.match(value):
        raise ValueError(f"not a Bluetooth address: {address!r} (expected AA:BB:CC:DD:EE:FF)")
    return value


def default_path() -> Path:
    """Beside the configuration file (NECKLINE_CONFIG moves both)."""
    return config_file().parent / FILE_NAME


@dataclass(frozen=True)
class Wearer:
    address: str
    name: str | None = None
    added_utc: str | None = None


class AllowList:
    """Load, query and update the allow-list file. Not safe against concurrent writers."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self._wearers: dict[str, Wearer] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = json.loads(self.path.read_text())
            if raw.get("version") != VERSION:
                raise ValueError(f"version {raw.get('version')!r} is not {VERSION}")
            for entry in raw["wearers"]:
                address = normalise_address(str(entry["address"]))
                name = entry.get("name")
                added = entry.get("added_utc")
                self._wearers[address] = Wearer(
                    address, None if name is None else str(name),
                    None if added is None else str(added),
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{self.path}: not a valid Neckline allow-list: {exc}") from exc

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        try:
            return normalise_address(address) in self._wearers
        except ValueError:
            return False

    def __len__(self) -> int:
        return len(self._wearers)

    def wearers(self) -> list[Wearer]:
        return sorted(self._wearers.values(), key=lambda w: w.address)

    def addresses(self) -> list[str]:
        return [w.address for w in self.wearers()]

    def add(self, address: str, name: str | None = None) -> Wearer:
        """Add (or rename) a wearer and save."""
        key = normalise_address(address)
        old = self._wearers.get(key)
        added = old.added_utc if old else datetime.now(UTC).isoformat(timespec="seconds")
        wearer = Wearer(key, name if name is not None else (old.name if old else None), added)
        self._wearers[key] = wearer
        self.save()
        return wearer

    def remove(self, address: str) -> bool:
        key = normalise_address(address)
        if self._wearers.pop(key, None) is None:
            return False
        self.save()
        return True

    def save(self) -> None:
        ensure_private_dir(self.path.parent)
        data = {
            "version": VERSION,
            "wearers": [
                {"address": w.address, "name": w.name, "added_utc": w.added_utc}
                for w in self.wearers()
            ],
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        # Owner-only from the first byte: create with 0600 rather than chmod afterwards.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # an existing temp file keeps its old mode through O_CREAT
        os.replace(tmp, self.path)
