"""Fixtures for the end-to-end tests: virtual wearers (the real firmware) on the session's
virtual BlueZ, and the real host service (`neckline run`) as a process of its own, storing into
the session's real influxd.

* `sim` (function): a `neckline.vsim.SimStack` joined to the `vble` fixture's (freshly reset)
  virtual BlueZ; `sim.add_wearer(n)` starts wearer n on person `seed + n - 1`'s trace,
  `sim.pair(n, host.env)` bonds it and puts it on the host's allow-list. Wearers are stopped
  after the test.
* `host` (function): a `HostService` for a fresh database on the session's influxd, with its
  own config and data directory; `host.start()` runs `python -m neckline run`, `host.kill()`
  SIGKILLs it, `host.stop()` SIGTERMs it and waits. Its process group is killed after the test.

Timings are shortened for test speed (docs/vble.md, "End-to-end tests"): the wearers run at
`E2E_SPEED` times real time on the firmware's virtual clock, and the host's link settings use a
short back-off, watchdog and backfill interval (HOST_LINK below); the defaults are in
host/neckline/config.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from neckline.influxd import InfluxdState
from neckline.influxql import InfluxQueryError, query, series_values
from neckline.vsim import SimStack
from neckline.vsim.wearer import VirtualWearer, micropython_binary

if TYPE_CHECKING:
    from tests.vble_fixtures import VBleHandle

REPO = Path(__file__).resolve().parents[2]
E2E_SPEED = 5.0  # device time runs 5x real time
HOST_LINK = {
    "scan_timeout": 5.0, "connect_timeout": 20.0, "gatt_timeout": 10.0, "cp_timeout": 5.0,
    "backfill_idle_timeout": 10.0, "backfill_interval": 5.0, "silence_timeout": 3.0,
    "probe_timeout": 2.0, "tick": 0.2, "backoff_base": 0.3, "backoff_cap": 2.0,
    "stable_after": 1.0,
}

needs_micropython = pytest.mark.skipif(micropython_binary() is None,
                                       reason="needs the micropython binary")


class HostService:
    """`neckline run` in a process group of its own, configured for one test database."""

    def __init__(self, root: Path, url: str, database: str, dbus_address: str) -> None:
        self.root = root
        self.url = url
        self.database = database
        self.config = root / "config" / "neckline.toml"
        self.data_dir = root / "data"
        self.log_path = root / "host.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.config.parent.mkdir(parents=True, exist_ok=True)
        link = "\n".join(f"{k} = {v}" for k, v in HOST_LINK.items())
        self.config.write_text(
            f'data_dir = "{self.data_dir}"\n\n[influx]\nurl = "{url}"\ndatabase = "{database}"\n'
            f"\n[devices]\nconnect_bonded = false\n\n[link]\n{link}\n\n"
            "[pipeline]\nstatus_interval_s = 1.0\nbatch_interval_s = 0.2\n\n"
            "[store]\nbatch_max_delay_s = 0.2\n\n[logging]\nlevel = \"info\"\n"
        )
        self.env = {"NECKLINE_CONFIG": str(self.config), "DBUS_SYSTEM_BUS_ADDRESS": dbus_address,
                    "PYTHONPATH": str(REPO / "host")}

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the host is running"
        self.runs += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- run {self.runs} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "neckline", "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                env={**os.environ, **self.env},
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown code runs."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"neckline run did not stop on SIGTERM in {timeout} s:\n"
                                     f"{self.log_tail()}") from None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the local helpers of its group, if any
        return int(self.proc.returncode)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- InfluxDB ------------------------------------------------------------------------------
    def rows(self, q: str) -> list[dict[str, Any]]:
        """Rows of `q`; none while the host has not created the schema yet."""
        try:
            return series_values(query(self.url, q, db=self.database))
        except InfluxQueryError as exc:
            if "retention policy not found" in str(exc):
                return []
            raise

    def posture(self, device_tag: str | None = None) -> list[dict[str, Any]]:
        where = f' WHERE "device" = \'{device_tag}\'' if device_tag else ""
        return self.rows('SELECT "seq", "boot", "flexion_raw", "lateral_raw", "flexion", '
                         f'"lateral", "flags", "backfill" FROM "raw"."posture"{where}')


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             detail: Callable[[], str] = lambda: "") -> None:
    """Poll `predicate` until it holds; fail with `what` (and `detail()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                                 f"{detail()}")
        time.sleep(0.5)


def device_ms(wearer: VirtualWearer) -> int:
    """The wearer's own clock (t_ms of its status)."""
    return int(wearer.status()["t_ms"])


def wait_device_ms(wearer: VirtualWearer, until_ms: int, timeout: float) -> None:
    """Sleep until the wearer's clock reads `until_ms`. Tests pace themselves by the device's
    clock, not the wall clock: on a loaded machine the virtual clock runs slower than its
    nominal speed (docs/vble.md), and device time is what the assertions count."""
    deadline = time.monotonic() + timeout
    while (now := device_ms(wearer)) < until_ms:
        if time.monotonic() > deadline:
            raise AssertionError(f"the wearer's clock reached only {now} ms of {until_ms} ms "
                                 f"in {timeout:.0f} s")
        time.sleep(min(0.5, max(0.05, (until_ms - now) / 1000.0 / E2E_SPEED)))


@pytest.fixture
def sim(vble: VBleHandle, tmp_path: Path) -> Iterator[SimStack]:
    stack = SimStack(tmp_path / "sim", speed=E2E_SPEED, seed=11, trace_s=1800.0,
                     vble=vble.process)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def host(sim: SimStack, influxd: InfluxdState, influx_db: str, tmp_path: Path
         ) -> Iterator[HostService]:
    service = HostService(tmp_path / "host", influxd.url, influx_db, sim.dbus_address)
    try:
        yield service
    finally:
        if service.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.proc.pid, signal.SIGKILL)
            service.proc.wait(30)


def stored_seqs(host: HostService, tag: str) -> tuple[Any, Any]:
    """(seq, time) arrays of the device's posture rows, in seq order."""
    import numpy as np

    rows = host.posture(tag)
    seqs = np.array([int(r["seq"]) for r in rows], np.int64)
    times = np.array([int(r["time"]) for r in rows], np.int64)
    order = np.argsort(seqs, kind="stable")
    return seqs[order], times[order]


def wait_all_stored(host: HostService, tag: str, last: int, timeout: float = 180.0) -> None:
    """Wait until InfluxDB holds seq 0..last of the device (the backfill caught up)."""
    import numpy as np

    def missing() -> Any:
        return np.setdiff1d(np.arange(0, last + 1), stored_seqs(host, tag)[0])

    wait_for(lambda: len(missing()) == 0, timeout, f"every sample up to seq {last} in InfluxDB",
             lambda: f"missing: {len(missing())} (e.g. {missing()[:10]})\n{host.log_tail()}")


def assert_exactly_once(host: HostService, tag: str, last: int) -> None:
    """Every seq 0..last stored exactly once, with timestamps increasing with seq."""
    import numpy as np

    seqs, times = stored_seqs(host, tag)
    assert len(np.unique(seqs)) == len(seqs), (
        "a sample is stored twice (same seq at two timestamps): "
        f"{seqs[:-1][np.diff(seqs) == 0][:10]}")
    upto = seqs <= last
    assert np.array_equal(seqs[upto], np.arange(0, last + 1)), "samples are missing"
    assert np.all(np.diff(times) > 0), "timestamps do not increase with seq"
