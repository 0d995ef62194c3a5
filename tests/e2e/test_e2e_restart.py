"""End to end, host restart: `neckline run` is SIGKILLed in the middle of a run (no shutdown
code runs: whatever it had received but not stored, and its open spool and state files, are cut
off mid-flight) and started again on the same data directory; InfluxDB ends with every sample the
device made exactly once.

Shortened: the wearer runs at 5x real time; the host is down for 10 s of wall time (50 s of
device time, which the device's raw ring keeps) and the run lasts 5 simulated minutes.
"""

from __future__ import annotations

import time

import pytest

from neckline.config import DevicesConfig
from neckline.vsim import SimStack
from tests.e2e.wearer_fixtures import (
    E2E_SPEED,
    HostService,
    assert_exactly_once,
    needs_micropython,
    stored_seqs,
    wait_all_stored,
    wait_for,
)

pytestmark = needs_micropython

RUN_DEVICE_S = 300.0


@pytest.mark.parametrize("link_lost", [
    pytest.param(True, id="host-reboot"),
    # BlueZ keeps an LE link when the D-Bus client that made it dies; the restarted host must
    # release it (the supervisor closes stale connections) or it would wait for adverts forever.
    pytest.param(False, id="bluez-keeps-link"),
])
def test_sigkill_mid_run_loses_nothing(sim: SimStack, host: HostService, link_lost: bool
                                       ) -> None:
    """host-reboot: the link goes down with the host (a machine restart or a Bluetooth reset);
    bluez-keeps-link: only the host process dies."""
    wearer = sim.add_wearer(1)
    sim.wait_advertising(1)
    sim.pair(1, host.env)
    start = time.monotonic()
    host.start()
    tag = DevicesConfig().tag(wearer.address)
    wait_for(lambda: len(stored_seqs(host, tag)[0]) > 200, 90,
             "200 samples stored before the kill", host.log_tail)
    host.kill()
    if link_lost:
        assert sim.faults.drop_link(wearer.address, 0.5), "no live link to drop"
    before = len(stored_seqs(host, tag)[0])
    time.sleep(10.0)
    host.start()
    wait_for(lambda: len(stored_seqs(host, tag)[0]) > before + 200, 60,
             "the restarted host to store new samples", host.log_tail)
    time.sleep(max(0.0, start + RUN_DEVICE_S / E2E_SPEED - time.monotonic()))
    last = int(wearer.status()["next_seq"]) - 1
    wait_all_stored(host, tag, last)
    assert host.stop() == 0, host.log_tail()
    assert_exactly_once(host, tag, last)
    assert last + 1 > before + 100, "the device made too few samples while the host was down"
