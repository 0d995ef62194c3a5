"""The v1 write dialect: `POST /write?db=&rp=&precision=ms`, over aiohttp.

InfluxDB 1.x answers it natively, and 2.x and 3.x keep it as a compatibility endpoint, so this
is the dialect that works everywhere. Authentication is HTTP Basic (username/password; 1.x, and
3.x with the token as password) or an `Authorization: Token` header (2.x, 3.x).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from neckline.influxql import Credentials
from neckline.store.schema import DESTINATIONS
from neckline.store.writer import WriteResult, error_message, parse_retry_after


class V1Writer:
    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policies: Mapping[str, str | None] | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        """`retention_policies` maps a destination to a retention policy name (None: the
        database's default policy); by default each destination is the policy of that name."""
        self._endpoint = url.rstrip("/") + "/write"
        self._url = url
        self._database = database
        self._rps: dict[str, str | None] = {d: d for d in DESTINATIONS}
        if retention_policies is not None:
            self._rps.update(retention_policies)
        # A token wins over username/password, as in the read-side client (influxql.py).
        credentials = Credentials(username=username, password=password, token=token)
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **credentials.headers()}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return f"v1 {self._url} db={self._database}"

    def _params(self, dest: str) -> dict[str, str]:
        params = {"db": self._database, "precision": "ms"}
        rp = self._rps.get(dest, dest)
        if rp:
            params["rp"] = rp
        return params

    async def write(self, dest: str, body: bytes) -> WriteResult:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                self._endpoint, params=self._params(dest), data=body,
                headers=self._headers,
            ) as resp:
                if 200 <= resp.status < 300:
                    await resp.read()
                    return WriteResult(resp.status)
                text = await resp.text(errors="replace")
                fallback = resp.headers.get("X-Influxdb-Error") or resp.reason or ""
                return WriteResult(
                    resp.status,
                    error_message(text, fallback),
                    parse_retry_after(resp.headers.get("Retry-After")),
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return WriteResult(None, f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
