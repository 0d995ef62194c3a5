"""A small local HTTP server that follows the InfluxDB 2.x write contract, for the v2 dialect tests.

No InfluxDB 2.x server can run here (Debian ships 1.6.7), so this implements the part of the
2.x API Neckline writes through, from the documented contract:

* `POST /api/v2/write?org=&bucket=&precision=` with `Authorization: Token ...`:
  204 on success; 401 `{"code":"unauthorized",...}` for a bad token; 404 for an unknown org or
  bucket; 400 `{"code":"invalid",...}` when the bucket is missing or a line does not parse (then
  nothing of the request is stored) or on a field type conflict (the other lines are stored and
  the message ends with `dropped=N`); 413 when the body exceeds `max_body_bytes`.
* failures queued with `fail_next` (429/503 with a Retry-After header, or anything else).
* `POST /write?db=&rp=` (the v1 compatibility endpoint, bucket `db/rp` or `db`), and `/ping`.

Points are stored with InfluxDB's semantics (measurement + tag set + time identifies a point;
a later write overwrites and merges fields), and the line parser used is the test-only strict one
below, which the line-protocol property tests also use.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FieldValue = float | int | bool | str


@dataclass(frozen=True)
class ParsedPoint:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time: int | None


class ParseError(ValueError):
    pass


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INT = re.compile(r"^[+-]?\d+i$")
_TRUE = {"t", "T", "true", "True", "TRUE"}
_FALSE = {"f", "F", "false", "False", "FALSE"}


def _read(line: str, i: int, stops: str, escapable: str) -> tuple[str, int]:
    out: list[str] = []
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] in escapable:
            out.append(line[i + 1])
            i += 2
            continue
        if c in stops:
            break
        out.append(c)
        i += 1
    return "".join(out), i


def _value(token: str) -> FieldValue:
    if _INT.match(token):
        value = int(token[:-1])
        if not -(2**63) <= value < 2**63:
            raise ParseError(f"integer out of range: {token}")
        return value
    if token in _TRUE:
        return True
    if token in _FALSE:
        return False
    if _FLOAT.match(token):
        return float(token)
    raise ParseError(f"invalid field value {token!r}")


def parse_line(line: str) -> ParsedPoint:
    """Parse one line of line protocol strictly (raises ParseError)."""
    if not line or line[0] in " #":
        raise ParseError("empty line or comment")
    measurement, i = _read(line, 0, ", ", ", ")
    if not measurement:
        raise ParseError("missing measurement")
    tags: dict[str, str] = {}
    while i < len(line) and line[i] == ",":
        key, i = _read(line, i + 1, "=, ", ",= ")
        if i >= len(line) or line[i] != "=" or not key:
            raise ParseError("bad tag key")
        value, i = _read(line, i + 1, ", =", ",= ")
        if not value:
            raise ParseError(f"missing value of tag {key!r}")
        tags[key] = value
    if i >= len(line) or line[i] != " ":
        raise ParseError("missing fields")
    i += 1
    fields: dict[str, FieldValue] = {}
    while True:
        key, i = _read(line, i, "=, ", ",= ")
        if i >= len(line) or line[i] != "=" or not key:
            raise ParseError("bad field key")
        i += 1
        if i < len(line) and line[i] == '"':
            i += 1
            out: list[str] = []
            while True:
                if i >= len(line):
                    raise ParseError("unterminated string")
                c = line[i]
                if c == "\\" and i + 1 < len(line) and line[i + 1] in '"\\':
                    out.append(line[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                if c == "\n":
                    raise ParseError("line break in a string")
                out.append(c)
                i += 1
            fields[key] = "".join(out)
        else:
            start = i
            while i < len(line) and line[i] not in ", ":
                i += 1
            fields[key] = _value(line[start:i])
        if i < len(line) and line[i] == ",":
            i += 1
            continue
        break
    stamp: int | None = None
    if i < len(line):
        if line[i] != " " or not re.fullmatch(r"-?\d+", line[i + 1 :]):
            raise ParseError(f"bad timestamp {line[i:]!r}")
        stamp = int(line[i + 1 :])
    return ParsedPoint(measurement, tags, fields, stamp)


def parse_body(body: bytes) -> list[ParsedPoint]:
    return [parse_line(line) for line in body.decode().split("\n") if line]


_PRECISION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def _kind(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    return "string"


@dataclass
class FakeInflux2:
    token: str = "test-token"
    org: str = "neckline-org"
    buckets: set[str] = field(default_factory=lambda: {"neckline", "neckline/raw",
                                                       "neckline/forever"})
    max_body_bytes: int = 1_000_000
    # (bucket, measurement, sorted tag items, time ns) -> fields
    points: dict[tuple[str, str, tuple[tuple[str, str], ...], int], dict[str, FieldValue]] = (
        field(default_factory=dict)
    )
    field_types: dict[tuple[str, str, str], str] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    _failures: deque[tuple[int, str | None, dict[str, str]]] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/v2/write", self._write_v2)
        app.router.add_post("/write", self._write_v1)
        app.router.add_get("/ping", self._ping)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail_next(
        self, status: int, *, retry_after: str | None = None, times: int = 1,
        body: dict[str, str] | None = None,
    ) -> None:
        for _ in range(times):
            self._failures.append((status, retry_after, body or {"code": "unavailable",
                                                                  "message": "try later"}))

    def rows(self, bucket: str, measurement: str) -> list[dict[str, Any]]:
        """Stored points of one measurement as dicts: tags, fields and `time` in ms."""
        out = []
        for (b, m, tags, t_ns), fields in sorted(self.points.items(), key=lambda kv: kv[0][3]):
            if b == bucket and m == measurement:
                out.append({**dict(tags), **fields, "time": t_ns // 1_000_000})
        return out

    # -- handlers -------------------------------------------------------------------------------

    @staticmethod
    def _json(status: int, code: str, message: str, headers: dict[str, str] | None = None
              ) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=status,
                                 headers=headers)

    def _respond(self, resp: web.Response) -> web.Response:
        self.statuses.append(resp.status)
        return resp

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers={"X-Influxdb-Version": "v2.7-fake"})

    def _authorised(self, request: web.Request, allow_basic: bool) -> bool:
        header = request.headers.get("Authorization", "")
        if header == f"Token {self.token}":
            return True
        if allow_basic:
            if header.startswith("Basic "):
                raw = base64.b64decode(header[6:]).decode()
                return raw.partition(":")[2] == self.token
            return request.query.get("p") == self.token
        return False

    async def _write_v2(self, request: web.Request) -> web.Response:
        if not self._authorised(request, allow_basic=False):
            return self._respond(self._json(401, "unauthorized", "unauthorized access"))
        if request.query.get("org") != self.org:
            return self._respond(self._json(
                404, "not found", f'organization name "{request.query.get("org")}" not found'))
        bucket = request.query.get("bucket")
        if not bucket:
            return self._respond(self._json(400, "invalid", "bucket not specified"))
        return await self._write(request, bucket, request.query.get("precision", "ns"))

    async def _write_v1(self, request: web.Request) -> web.Response:
        if not self._authorised(request, allow_basic=True):
            return self._respond(self._json(401, "unauthorized", "unauthorized access"))
        db = request.query.get("db")
        if not db:
            return self._respond(self._json(400, "invalid", "database not specified"))
        rp = request.query.get("rp")
        return await self._write(request, f"{db}/{rp}" if rp else db,
                                 request.query.get("precision", "ns"))

    async def _write(self, request: web.Request, bucket: str, precision: str) -> web.Response:
        if self._failures:
            status, retry_after, error = self._failures.popleft()
            headers = {"Retry-After": retry_after} if retry_after is not None else None
            return self._respond(web.json_response(error, status=status, headers=headers))
        if bucket not in self.buckets:
            return self._respond(self._json(404, "not found", f'bucket "{bucket}" not found'))
        if precision not in _PRECISION_NS:
            return self._respond(self._json(400, "invalid", f"invalid precision {precision!r}"))
        if (request.content_length or 0) > self.max_body_bytes:
            return self._respond(self._json(
                413, "request too large", "unable to read data: points batch is too large"))
        body = await request.read()
        if len(body) > self.max_body_bytes:
            return self._respond(self._json(
                413, "request too large", "unable to read data: points batch is too large"))
        parsed: list[ParsedPoint] = []
        for number, line in enumerate(body.decode("utf-8", "replace").split("\n"), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            try:
                parsed.append(parse_line(line))
            except ParseError as exc:
                return self._respond(self._json(
                    400, "invalid", f"unable to parse '{line[:200]}': {exc} (line {number})"))
        scale = _PRECISION_NS[precision]
        conflicts: list[str] = []
        for point in parsed:
            clash = next(
                (
                    (name, kind, self.field_types[(bucket, point.measurement, name)])
                    for name, value in point.fields.items()
                    for kind in (_kind(value),)
                    if self.field_types.get((bucket, point.measurement, name), kind) != kind
                ),
                None,
            )
            if clash is not None:
                name, kind, existing = clash
                conflicts.append(
                    f'field type conflict: input field "{name}" on measurement '
                    f'"{point.measurement}" is type {kind}, already exists as type {existing}'
                )
                continue
            for name, value in point.fields.items():
                self.field_types[(bucket, point.measurement, name)] = _kind(value)
            stamp = point.time if point.time is not None else 0
            key = (bucket, point.measurement, tuple(sorted(point.tags.items())), stamp * scale)
            self.points.setdefault(key, {}).update(point.fields)
        if conflicts:
            message = f"partial write: {conflicts[0]} dropped={len(conflicts)}"
            return self._respond(self._json(400, "invalid", message))
        return self._respond(web.Response(status=204))

