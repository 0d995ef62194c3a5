"""The headache log: entries, CSV import/export, storage in InfluxDB, the device's marker.

docs/headaches.md describes the CSV columns, accepted time formats and the commands.
"""

from neckline.headache.model import HEADACHE_TYPES, EntryError, HeadacheEntry

__all__ = ["HEADACHE_TYPES", "EntryError", "HeadacheEntry"]
