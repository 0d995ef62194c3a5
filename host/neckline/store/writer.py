"""The one small interface both InfluxDB write dialects implement, and the typed result.

A writer turns a POST into a `WriteResult`; it never raises for anything the server or the
network does. The batcher decides what to do from `WriteResult.outcome` alone, so the v1
(`/write`) and v2 (`/api/v2/write`) dialects behave identically.
"""

from __future__ import annotations

import email.utils
import enum
import json
import re
import time
from dataclasses import dataclass
from typing import Protocol


class Outcome(enum.Enum):
    OK = "ok"
    TOO_LARGE = "too_large"  # 413: split the batch
    BAD_DATA = "bad_data"  # 400/422: some lines were refused; find them, count them, move on
    THROTTLED = "throttled"  # 429, 503: wait as long as Retry-After says, then resend
    UNAVAILABLE = "unavailable"  # no answer or another 5xx: back off, resend
    CONFIG = "config"  # 401/403/404 and other 4xx: fix the configuration; keep data, back off


@dataclass(frozen=True)
class WriteResult:
    """`status` is the HTTP status, or None when no answer came (connection refused, timeout)."""

    status: int | None
    message: str = ""
    retry_after: float | None = None

    @property
    def outcome(self) -> Outcome:
        return classify(self.status, self.message)

    @property
    def dropped(self) -> int | None:
        """How many points the server says it dropped (`dropped=N` in 1.x/2.x messages)."""
        match = re.search(r"dropped=(\d+)", self.message)
        return int(match.group(1)) if match else None

    def describe(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"{where}: {self.message}" if self.message else where


# A 400 is about the data when its message says so; one that names the bucket, database or
# precision and nothing about the data is a configuration problem, and the batch must be kept,
# not picked apart and quarantined line by line.
_DATA_HINTS = re.compile(
    r"partial write|unable to parse|parsing failed|conflict|invalid (field|tag|number|boolean|"
    r"timestamp|float|integer)|dropped=|beyond retention|max-values|max series|line \d+",
    re.IGNORECASE,
)
_CONFIG_HINTS = re.compile(
    r"bucket|database|precision|organi[sz]ation|\borg\b|not specified|retention policy",
    re.IGNORECASE,
)


def classify(status: int | None, message: str = "") -> Outcome:
    if status is None:
        return Outcome.UNAVAILABLE
    if 200 <= status < 300:
        return Outcome.OK
    if status == 413:
        return Outcome.TOO_LARGE
    if status in (400, 422):
        if _CONFIG_HINTS.search(message) and not _DATA_HINTS.search(message):
            return Outcome.CONFIG
        return Outcome.BAD_DATA
    if status in (429, 503):
        return Outcome.THROTTLED
    if status >= 500:
        return Outcome.UNAVAILABLE
    return Outcome.CONFIG


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_message(body: bytes | str, fallback: str = "") -> str:
    """The message of an InfluxDB error body: 1.x `{"error": ...}`, 2.x/3.x `{"message": ...}`."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return " ".join(text.split())[:500] or fallback


class Writer(Protocol):
    """Sends one body of line protocol to one destination (`raw`, `forever`: see schema)."""

    @property
    def name(self) -> str: ...

    async def write(self, dest: str, body: bytes) -> WriteResult: ...

    async def close(self) -> None: ...
