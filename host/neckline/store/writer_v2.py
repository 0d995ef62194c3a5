"""The v2 write dialect: InfluxDB 2.x/3.x native `/api/v2/write`, via influxdb-client's async API.

The client only transports: batching, retries and durability are the batcher's and the spool's.
Its exceptions are turned into the same `WriteResult` as the v1 dialect (status code, message
from the JSON error body, Retry-After), so the batcher treats both dialects alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from influxdb_client import WritePrecision
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write_api_async import WriteApiAsync

from neckline.store.schema import DESTINATIONS
from neckline.store.writer import WriteResult, error_message, parse_retry_after


class V2Writer:
    def __init__(
        self,
        url: str,
        org: str,
        token: str,
        buckets: str | Mapping[str, str],
        *,
        timeout: float = 30.0,
    ) -> None:
        """`buckets` is one bucket for every destination, or a destination -> bucket map."""
        self._url = url
        self._org = org
        self._token = token
        if isinstance(buckets, str):
            self._buckets = {d: buckets for d in DESTINATIONS}
        else:
            self._buckets = dict(buckets)
        self._timeout_ms = int(timeout * 1000)
        self._client: InfluxDBClientAsync | None = None
        self._api: WriteApiAsync | None = None

    @property
    def name(self) -> str:
        return f"v2 {self._url} org={self._org}"

    def _bucket(self, dest: str) -> str:
        bucket = self._buckets.get(dest)
        if bucket is None:
            # An unmapped destination goes where the rest goes rather than nowhere.
            bucket = next(iter(self._buckets.values()))
        return bucket

    async def write(self, dest: str, body: bytes) -> WriteResult:
        # The client insists on being created inside a running event loop.
        if self._client is None or self._api is None:
            self._client = InfluxDBClientAsync(
                url=self._url, token=self._token, org=self._org, timeout=self._timeout_ms
            )
            self._api = self._client.write_api()
        try:
            await self._api.write(
                bucket=self._bucket(dest), org=self._org, record=body,
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]
            )
        except InfluxDBError as exc:
            return _from_client_error(exc)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return WriteResult(None, f"{type(exc).__name__}: {exc}")
        return WriteResult(204)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._api = None


def _from_client_error(exc: InfluxDBError) -> WriteResult:
    status: Any = getattr(exc, "status", None)
    if not isinstance(status, int) or status <= 0:
        return WriteResult(None, str(exc.message))
    body = getattr(exc, "body", None)
    message = error_message(body, str(exc.message)) if body else str(exc.message)
    header = exc.retry_after if isinstance(exc.retry_after, str) else None
    return WriteResult(status, message, parse_retry_after(header))
