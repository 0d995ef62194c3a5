"""The adapter's bonds: the long-term keys of paired devices, in memory and optionally on disk.

BlueZ keeps bonds under /var/lib/bluetooth; the virtual BlueZ keeps them in a small JSON file
when given one, so a bond can outlive the process (as it outlives bluetoothd restarts).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bond:
    address: str
    address_type: int
    ltk: str
    name: str | None = None


class BondStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._bonds: dict[str, Bond] = {}
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("bond file %s is unreadable, starting without bonds: %s", path, exc)
            return
        for entry in raw.get("bonds", []) if isinstance(raw, dict) else []:
            try:
                bond = Bond(**entry)
                bytes.fromhex(bond.ltk)
            except (TypeError, ValueError) as exc:
                log.error("ignoring malformed bond %r in %s: %s", entry, path, exc)
                continue
            self._bonds[bond.address.upper()] = bond

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps({"bonds": [asdict(b) for b in self._bonds.values()]}, indent=1))
        os.replace(tmp, self.path)

    def get(self, address: str) -> Bond | None:
        return self._bonds.get(address.upper())

    def all(self) -> list[Bond]:
        return list(self._bonds.values())

    def store(self, bond: Bond) -> None:
        self._bonds[bond.address.upper()] = bond
        self._save()

    def remove(self, address: str) -> bool:
        gone = self._bonds.pop(address.upper(), None) is not None
        if gone:
            self._save()
        return gone

    def clear(self) -> None:
        self._bonds.clear()
        self._save()
