"""A small synchronous client for InfluxDB's v1 HTTP API (`/ping`, `/query`).

Used by the command line and tests. InfluxQL is the query language that every current InfluxDB
line answers (1.x natively, 2.x through DBRP mappings, 3.x natively), so the read side stays on it.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from neckline.errors import NecklineError


class InfluxQueryError(NecklineError):
    """The server answered a query with an error, or could not be reached."""


@dataclass(frozen=True)
class Credentials:
    """How to authenticate. Never logged: `__repr__` hides the secrets."""

    username: str | None = None
    password: str | None = None
    token: str | None = None

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Token {self.token}"}
        if self.username is not None:
            raw = f"{self.username}:{self.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def __repr__(self) -> str:
        secrets = "set" if self.token or self.password else "none"
        return f"Credentials(username={self.username!r}, secrets={secrets})"


NO_AUTH = Credentials()


def ping(url: str, timeout: float = 2.0, credentials: Credentials = NO_AUTH) -> str | None:
    """Return the server's version if `/ping` answers 204, else None."""
    req = urllib.request.Request(url.rstrip("/") + "/ping", headers=credentials.headers())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if resp.status == 204:
                return str(resp.headers.get("X-Influxdb-Version", "unknown"))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return None


def query(
    url: str,
    q: str,
    db: str | None = None,
    *,
    credentials: Credentials = NO_AUTH,
    epoch: str | None = "ms",
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Run InfluxQL with POST and return the `results` list; raise on any statement error."""
    params: dict[str, str] = {"q": q}
    if db:
        params["db"] = db
    if epoch:
        params["epoch"] = epoch
    body = urllib.parse.urlencode(params).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **credentials.headers()}
    req = urllib.request.Request(url.rstrip("/") + "/query", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise InfluxQueryError(f"InfluxDB at {url} answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise InfluxQueryError(f"cannot reach InfluxDB at {url}: {exc}") from exc
    results: list[dict[str, Any]] = payload.get("results", [])
    for result in results:
        if "error" in result:
            raise InfluxQueryError(f"InfluxQL error: {result['error']}")
    if "error" in payload:
        raise InfluxQueryError(f"InfluxQL error: {payload['error']}")
    return results


def series_values(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten the first statement's series into row dicts (column name -> value)."""
    rows: list[dict[str, Any]] = []
    if not results:
        return rows
    for series in results[0].get("series", []):
        cols = series["columns"]
        tags = series.get("tags", {})
        for values in series.get("values", []):
            row = dict(zip(cols, values, strict=True))
            row.update(tags)
            rows.append(row)
    return rows
