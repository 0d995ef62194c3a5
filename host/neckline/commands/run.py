"""`neckline run`: the service. Link -> pipeline -> store, until SIGINT/SIGTERM.

Start-up: load and validate the configuration; set up logging (key=value or JSON lines, secrets
masked); pick the InfluxDB (the configured external one, else the private local influxd, started
here if it is not running, and stopped again at shutdown); open the spool (what a previous run
left is replayed, with a progress line); ensure the 1.x schema in the background (retried until
it works, data waits in the spool meanwhile); restore the pipeline's state; start the BLE link
for the allowed wearers and keep scanning for bonded ones. Every few seconds: release what
waited only for time, write the status file for `neckline status`, store `link` points.

Shutdown (SIGINT/SIGTERM): stop the link (ABORT running backfills, disconnect), process every
record already received, place what waits for clock evidence, save the state, then give the
store `close_timeout_s` to deliver; anything undelivered stays in the spool for the next start.
docs/operations.md describes all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import urllib.parse
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from neckline import __version__
from neckline import config as config_mod
from neckline.commands.status import STATUS_VERSION, status_path
from neckline.config import Config, LoggingConfig
from neckline.influxd import LocalInfluxd
from neckline.influxql import Credentials, InfluxQueryError
from neckline.paths import data_dir as default_data_dir
from neckline.paths import ensure_private_dir
from neckline.progress import Progress

if TYPE_CHECKING:  # the service's heavy modules load when it starts, not for every command
    from neckline.pipeline import Pipeline
    from neckline.store import Batcher

log = logging.getLogger("neckline.run")

BACKFILL_PROGRESS_MIN = 3000  # samples owed before a backfill gets a progress line


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run the service: connect to wearers, process and store posture",
        description=(
            "Connect to the allowed wearers (and keep looking for them), receive their posture "
            "stream and backlog, align clocks, filter, detect sustained strain and store "
            "everything in InfluxDB (the private local server unless one is configured). "
            "Stops cleanly on SIGINT/SIGTERM. See docs/operations.md."
        ),
    )
    parser.add_argument("--config", type=Path, default=None,
                        help="configuration file (default: NECKLINE_CONFIG or the user config)")
    parser.add_argument("--log-format", choices=config_mod.LOG_FORMATS, default=None,
                        help="override [logging] format")
    parser.add_argument("--log-level", choices=config_mod.LOG_LEVELS, default=None,
                        help="override [logging] level")
    parser.add_argument("--no-link", action="store_true",
                        help="do not use Bluetooth (store what the spool holds, then idle)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    level = "debug" if args.verbose else (args.log_level or cfg.logging.level)
    setup_logging(LoggingConfig(level, args.log_format or cfg.logging.format), _secrets(cfg))
    service = Service(cfg, link=not args.no_link)
    return service.main()


# --- logging ------------------------------------------------------------------------------------
_STD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class _Redact(logging.Filter):
    """Masks configured secrets wherever they would end up in a log line."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, "********")
            record.msg, record.args = text, None
        return True


class KeyValueFormatter(logging.Formatter):
    """ts=2026-01-05T09:00:00.123Z level=info logger=neckline.run msg="..." key=value..."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        parts = [f"ts={ts}Z", f"level={record.levelname.lower()}", f"logger={record.name}",
                 f"msg={_kv(record.getMessage())}"]
        parts += [f"{k}={_kv(v)}" for k, v in record.__dict__.items() if k not in _STD_ATTRS]
        if record.exc_info:
            parts.append(f"exc={_kv(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (and exc, and any `extra` fields)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        data: dict[str, Any] = {"ts": ts + "Z", "level": record.levelname.lower(),
                                "logger": record.name, "msg": record.getMessage()}
        data.update({k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def _kv(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n\t'):
        return text
    return json.dumps(text)


def setup_logging(cfg: LoggingConfig, secrets: list[str], stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if cfg.format == "json" else KeyValueFormatter())
    handler.addFilter(_Redact(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(cfg.level.upper())
    if cfg.level != "debug":
        for noisy in ("bleak", "dbus_fast", "asyncio", "aiohttp", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _secrets(cfg: Config) -> list[str]:
    return [s for s in (cfg.influx.password, cfg.influx.token) if s]


def public_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


# --- the service ----------------------------------------------------------------------------------
class Service:
    def __init__(self, cfg: Config, *, link: bool = True) -> None:
        self.cfg = cfg
        self.use_link = link
        self.data_dir = cfg.data_dir or default_data_dir()
        self.status_path = status_path(self.data_dir)
        self.started = time.time()
        self.state = "starting"
        self.url = ""
        self.local: LocalInfluxd | None = None  # the influxd this run started
        self.schema = "pending"
        self.scan: dict[str, Any] = {"scans": 0, "last_error": None, "found": []}
        self.batcher: Batcher | None = None
        self.pipeline: Pipeline | None = None
        self.supervisor: Any = None  # neckline.link.LinkSupervisor once started
        self.finder: Any = None
        self._progress: dict[str, tuple[Progress, int]] = {}

    # -- entry ---------------------------------------------------------------------------------
    def main(self) -> int:
        ensure_private_dir(self.data_dir)
        log.info("neckline %s starting (pid %d, data in %s)", __version__, os.getpid(),
                 self.data_dir)
        # In the main thread: the local influxd is tied to this process (PR_SET_PDEATHSIG fires
        # when the *thread* that started it ends, so never from a worker thread).
        self.url = self._influx_target()
        try:
            return asyncio.run(self.serve())
        except BaseException as exc:
            self.state = "failed"
            if not isinstance(exc, KeyboardInterrupt):
                log.error("neckline run failed: %s", exc)
            raise
        finally:
            if self.local is not None:
                self.local.stop()
                log.info("local influxd stopped")
            self._write_status()

    def _influx_target(self) -> str:
        influx = self.cfg.influx
        if influx.url:
            log.info("using the configured InfluxDB at %s", public_url(influx.url))
            return influx.url
        server = LocalInfluxd(self.data_dir / "influxdb")
        running = server.running()
        if running is not None:
            log.info("using the running local influxd (pid %d) at %s", running.pid, running.url)
            return running.url
        state = server.start(die_with_parent=True)
        self.local = server
        log.info("started the local influxd (pid %d) at %s", state.pid, state.url)
        return state.url

    async def serve(self) -> int:
        from neckline.pipeline import Pipeline, PipelineSettings
        from neckline.store import Batcher, Spool, writer_for

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal(signame: str) -> None:
            if stop.is_set():
                log.info("%s again: already stopping", signame)
                return
            log.info("%s received: stopping", signame)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        cfg = self.cfg
        store_cfg = cfg.store
        spool = Spool(store_cfg.spool_dir or self.data_dir / "spool",
                      max_bytes=store_cfg.spool_max_mb * 1024 * 1024,
                      fsync_interval=store_cfg.fsync_interval_s)
        self.batcher = batcher = Batcher(spool, writer_for(cfg.influx, self.url),
                                         max_lines=store_cfg.batch_max_lines,
                                         max_delay=store_cfg.batch_max_delay_s)
        recovery = await batcher.start()
        if recovery.corrupt_bytes or recovery.torn_bytes:
            log.warning("spool recovery: %d damaged and %d torn bytes quarantined",
                        recovery.corrupt_bytes, recovery.torn_bytes)
        self.pipeline = pipeline = Pipeline(
            batcher, self.data_dir / "pipeline", PipelineSettings.from_config(cfg),
            tag_for=cfg.devices.tag, max_lines=store_cfg.batch_max_lines,
            batch_interval=cfg.pipeline.batch_interval_s,
        )
        pipe_stop = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(pipeline.run(pipe_stop), name="neckline-pipeline"),
            asyncio.create_task(self._replay_progress(stop), name="neckline-replay"),
            asyncio.create_task(self._schema(stop), name="neckline-schema"),
            asyncio.create_task(self._status_loop(stop), name="neckline-status"),
        ]
        if cfg.influx.dialect == "v1":
            tasks.append(asyncio.create_task(self._rollups(stop), name="neckline-rollup"))
        if self.use_link:
            await self._start_link(stop, tasks)
        self.state = "running"
        self._write_status()
        log.info("running; status in %s", self.status_path)
        await stop.wait()

        self.state = "stopping"
        self._write_status()
        if self.supervisor is not None:
            await self.supervisor.stop()  # ABORT backfills, disconnect: SessionDown records
        pipe_stop.set()
        await tasks[0]
        pipeline.flush()
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        for progress, _ in self._progress.values():
            progress.close("stopped")
        self._link_points(pipeline.snapshot()["devices"])
        delivered = await batcher.close(timeout=store_cfg.close_timeout_s)
        left = batcher.status().pending_lines
        if delivered:
            log.info("stopped; everything was delivered to InfluxDB")
        else:
            log.info("stopped; %d lines stay in the spool for the next start", left)
        self.state = "stopped"
        return 0

    # -- link ------------------------------------------------------------------------------------
    async def _start_link(self, stop: asyncio.Event, tasks: list[asyncio.Task[Any]]) -> None:
        from neckline.link import (
            AllowList,
            AllowPolicy,
            LinkSettings,
            LinkSupervisor,
            WearerFinder,
        )

        class ListedOnly(AllowPolicy):
            """`connect_bonded = false`: only listed addresses, bonded or not."""

            def allows(self, address: str, bonded: bool) -> bool:
                return address.upper() in self.allow_list

        assert self.pipeline is not None
        devices = self.cfg.devices
        listed = set(devices.allow) | set(AllowList().addresses())
        policy = (AllowPolicy(frozenset(listed)) if devices.connect_bonded
                  else ListedOnly(frozenset(listed)))
        self.finder = WearerFinder(policy)
        settings = LinkSettings(**self.cfg.link.settings_kwargs())
        self.supervisor = LinkSupervisor(
            sink=self.pipeline.put, planner=self.pipeline, settings=settings,
            strain_config=self.cfg.strain, finder=self.finder,
        )
        for address in sorted(listed):
            self.supervisor.add(address)
        log.info("looking after %d listed wearer(s)%s", len(listed),
                 ", and any bonded Neckline wearer" if devices.connect_bonded else "")
        if devices.connect_bonded or not listed:
            tasks.append(asyncio.create_task(self._discover(stop), name="neckline-discover"))

    async def _discover(self, stop: asyncio.Event) -> None:
        """Keep scanning: wearers BlueZ is bonded with are taken on when heard."""
        from neckline.backoff import Backoff

        backoff = Backoff(5.0, 300.0)
        failures = 0
        while not stop.is_set():
            try:
                sightings = await self.finder.scan(self.cfg.devices.scan_window_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no BlueZ, no adapter, D-Bus trouble: keep trying
                failures += 1
                self.scan["last_error"] = _scan_error(exc)
                delay = backoff.next()
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("scanning for wearers failed (%s); retrying in %.0f s",
                                self.scan["last_error"], delay)
                await _wait(stop, delay)
                continue
            failures = 0
            backoff.reset()
            self.scan["scans"] += 1
            self.scan["last_error"] = None
            self.scan["found"] = [s.address for s in sightings]
            for s in sightings:
                if s.allowed and s.address not in self.supervisor.wearers:
                    log.info("taking on wearer %s (%s)", s.address, s.name or "no name")
                    self.supervisor.add(s.address)
            devices = self.cfg.devices
            await _wait(stop, devices.scan_every_s - devices.scan_window_s)

    # -- storage side tasks ---------------------------------------------------------------------
    async def _schema(self, stop: asyncio.Event) -> None:
        from neckline.backoff import Backoff
        from neckline.store import StoreError, ensure_schema_v1

        influx = self.cfg.influx
        if influx.dialect != "v1":
            self.schema = "not managed (v2 dialect)"
            return
        credentials = Credentials(influx.username, influx.password, influx.token)
        backoff = Backoff(2.0, 120.0)
        attempts = 0
        while not stop.is_set():
            try:
                done = await asyncio.to_thread(
                    ensure_schema_v1, self.url, influx.database,
                    raw_duration=self.cfg.store.raw_retention, credentials=credentials,
                )
            except (InfluxQueryError, StoreError) as exc:
                attempts += 1
                self.schema = f"failed: {exc}"
                if attempts in (1, 10) or attempts % 50 == 0:
                    log.warning("cannot set up the database yet (%s); data waits in the spool",
                                exc)
                await _wait(stop, backoff.next())
                continue
            self.schema = "ok"
            if done:
                log.info("database %s set up: %d statement(s)", influx.database, len(done))
            return

    async def _rollups(self, stop: asyncio.Event) -> None:
        """Roll up posture stored too late for the continuous query (after a backfill)."""
        from neckline.store import StoreError, rollup_range

        assert self.pipeline is not None and self.batcher is not None
        influx = self.cfg.influx
        credentials = Credentials(influx.username, influx.password, influx.token)
        while not stop.is_set():
            await _wait(stop, 30.0)
            ranges = self.pipeline.take_rollups()
            if not ranges or self.schema != "ok":
                self.pipeline.return_rollups(ranges)
                continue
            if not await self.batcher.flush(timeout=60):
                self.pipeline.return_rollups(ranges)
                continue
            for i, (start, end) in enumerate(ranges):
                try:
                    n = await asyncio.to_thread(rollup_range, self.url, influx.database, start,
                                                end, credentials=credentials)
                    log.info("rolled up %d minute(s) of backfilled posture", n)
                except (InfluxQueryError, StoreError) as exc:
                    log.warning("rollup of backfilled posture failed (%s); will retry", exc)
                    self.pipeline.return_rollups(ranges[i:])
                    break

    async def _replay_progress(self, stop: asyncio.Event) -> None:
        assert self.batcher is not None
        total = self.batcher.status().pending_lines
        if not total:
            return
        log.info("replaying %d lines the previous run left in the spool", total)
        with Progress("spool replay", total, unit="lines") as progress:
            while not stop.is_set():
                written = self.batcher.status().written_points
                progress.update(min(written, total))
                if written >= total:
                    break
                await _wait(stop, 0.5)

    # -- status -----------------------------------------------------------------------------------
    async def _status_loop(self, stop: asyncio.Event) -> None:
        interval = self.cfg.pipeline.status_interval_s
        while not stop.is_set():
            await _wait(stop, interval)
            if stop.is_set():
                break
            assert self.pipeline is not None
            await self.pipeline.atick()
            devices = self.pipeline.snapshot()["devices"]
            self._backfill_progress(devices)
            self._write_status()
            self._link_points(devices)

    def _link_state(self, address: str, dev_link_state: str, backlog: int) -> str:
        wearer = None if self.supervisor is None else self.supervisor.wearers.get(address)
        state = wearer.state if wearer is not None else dev_link_state
        mapped = {"searching": "scanning", "connecting": "connecting",
                  "connected": "connected"}.get(state, "disconnected")
        if mapped == "connected" and backlog:
            return "backfilling"
        return mapped

    def _link_points(self, devices: dict[str, Any]) -> None:
        """A `link` status point per device (from the pipeline's snapshot)."""
        from neckline.pipeline.points import link_point
        from neckline.store import StoreError

        if self.batcher is None or not devices:
            return
        store = self.batcher.status()
        now = int(time.time() * 1000)
        rssi: dict[str, int] = {}
        if self.finder is not None:
            rssi = {s.address: s.rssi for s in self.finder.sightings()}
        points = [
            link_point(
                dev["device"], now, self._link_state(address, dev["link"]["state"],
                                                     dev["backlog"]),
                rssi=rssi.get(address), battery_pct=dev["link"]["battery_pct"],
                backlog=dev["backlog"], spool_bytes=store.spool_bytes,
                rejected=store.rejected_points,
            )
            for address, dev in devices.items()
        ]
        try:
            self.batcher.submit_points(points)
        except StoreError as exc:
            log.debug("link status not stored: %s", exc)

    def _backfill_progress(self, devices: dict[str, Any]) -> None:
        for address, dev in devices.items():
            backlog = int(dev["backlog"])
            connected = dev["link"]["state"] == "connected"
            entry = self._progress.get(address)
            if entry is None:
                if backlog >= BACKFILL_PROGRESS_MIN and connected:
                    progress = Progress(f"{dev['device']} backfill", backlog, unit="samples")
                    self._progress[address] = (progress, backlog)
                continue
            progress, total = entry
            if backlog > total:
                total = backlog
                self._progress[address] = (progress, total)
            progress.update(total - backlog, total)
            if backlog == 0 or not connected:
                progress.close("done" if backlog == 0 else "paused: disconnected")
                del self._progress[address]

    def _write_status(self) -> None:
        from neckline.pipeline import write_json_atomic

        doc: dict[str, Any] = {
            "version": STATUS_VERSION,
            "pid": os.getpid(),
            "state": self.state,
            "neckline": __version__,
            "started_at": self.started,
            "updated_at": time.time(),
            "interval_s": self.cfg.pipeline.status_interval_s,
            "config": str(self.cfg.source) if self.cfg.source else None,
            "data_dir": str(self.data_dir),
            "influx": {
                "url": public_url(self.url) if self.url else None,
                "local": self.cfg.influx.url is None,
                "dialect": self.cfg.influx.dialect,
                "database": self.cfg.influx.database,
                "schema": self.schema,
            },
            "store": None if self.batcher is None else self.batcher.status().as_dict(),
            "pipeline": None if self.pipeline is None else self.pipeline.snapshot(),
            "wearers": {} if self.supervisor is None else {
                a: asdict(w) for a, w in self.supervisor.wearers.items()
            },
            "scan": self.scan if self.use_link else None,
        }
        try:
            write_json_atomic(self.status_path, doc)
        except OSError as exc:
            log.warning("cannot write the status file %s: %s", self.status_path, exc)


def _scan_error(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return f"cannot reach BlueZ on the system D-Bus ({text}); is bluetoothd running?"
    return text


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


__all__ = ["JsonFormatter", "KeyValueFormatter", "Service", "public_url", "setup_logging"]
