"""The BLE central: find Neckline wearers, keep them connected, hand every payload downstream.

docs/link.md describes the design. The pieces:

| module | job |
|---|---|
| `records.py` | what goes downstream: `Received` payloads and session notices |
| `discovery.py` | scanning by service UUID, the allow policy, one shared scanner per process |
| `allowlist.py` | the allow-list file in the user's config directory |
| `controlpoint.py` | control-point requests and their indicated responses |
| `planner.py` | the pipeline's side of backfill: which gaps to ask for |
| `session.py` | one connection, from connect to disconnect |
| `watchdog.py` | a silent link must answer a probe or be dropped |
| `supervisor.py` | one task per wearer, reconnecting forever with back-off |
| `settings.py` | every timing and policy knob |
"""

from neckline.link.allowlist import AllowList, Wearer, normalise_address
from neckline.link.controlpoint import (
    ControlPoint,
    ControlPointError,
    ControlPointTimeout,
    LinkError,
)
from neckline.link.discovery import AllowPolicy, Sighting, WearerFinder
from neckline.link.planner import BackfillPlanner, NoBackfill
from neckline.link.records import (
    ConfigRead,
    Kind,
    LinkRecord,
    Notice,
    RawBackfilled,
    Received,
    SessionDown,
    SessionUp,
    Sink,
    StatusRead,
    SummaryBackfilled,
    TimeSynced,
)
from neckline.link.session import BondBroken, NotBonded, Session
from neckline.link.settings import LinkSettings
from neckline.link.supervisor import LinkSupervisor, WearerState

__all__ = [
    "AllowList",
    "AllowPolicy",
    "BackfillPlanner",
    "BondBroken",
    "ConfigRead",
    "ControlPoint",
    "ControlPointError",
    "ControlPointTimeout",
    "Kind",
    "LinkError",
    "LinkRecord",
    "LinkSettings",
    "LinkSupervisor",
    "NoBackfill",
    "NotBonded",
    "Notice",
    "RawBackfilled",
    "Received",
    "Session",
    "SessionDown",
    "SessionUp",
    "Sighting",
    "Sink",
    "StatusRead",
    "SummaryBackfilled",
    "TimeSynced",
    "Wearer",
    "WearerFinder",
    "WearerState",
    "normalise_address",
]
