"""End to end, link drops: the real firmware (MicroPython, virtual clock) -> virtual BlueZ ->
bleak -> `neckline run` -> influxd. Twenty forced link losses during more than ten simulated
minutes; after backfill InfluxDB holds every sample the device made exactly once.

Shortened timings: the wearer runs at E2E_SPEED (5x) real time, so ten simulated minutes take
about two minutes of wall time (the drops are paced by the device's clock); each outage lasts 1 s
of wall time (about 5 s of device time); the host's link settings are the short ones of
tests/e2e/wearer_fixtures.py.
"""

from __future__ import annotations

from neckline.config import DevicesConfig
from neckline.vsim import SimStack
from tests.e2e.wearer_fixtures import (
    HostService,
    assert_exactly_once,
    device_ms,
    needs_micropython,
    wait_all_stored,
    wait_device_ms,
    wait_for,
)

pytestmark = needs_micropython

DROPS = 20
RUN_DEVICE_S = 600.0  # simulated seconds of the run


def test_twenty_link_drops_lose_and_duplicate_nothing(sim: SimStack, host: HostService) -> None:
    wearer = sim.add_wearer(1)
    sim.wait_advertising(1)
    sim.pair(1, host.env)
    host.start()
    tag = DevicesConfig().tag(wearer.address)
    wait_for(lambda: len(host.posture(tag)) > 0, 90, "the first posture sample in InfluxDB",
             host.log_tail)
    gap_ms = int(RUN_DEVICE_S * 1000 / (DROPS + 1))
    drops = 0
    start_ms = device_ms(wearer)
    for k in range(DROPS):
        wait_device_ms(wearer, start_ms + (k + 1) * gap_ms, 3 * gap_ms / 1000)
        if sim.faults.drop_link(wearer.address, 1.0):
            drops += 1
    wait_device_ms(wearer, start_ms + int(RUN_DEVICE_S * 1000), 3 * gap_ms / 1000)
    status = wearer.status()
    assert drops == DROPS, f"only {drops} drops hit a live link:\n{host.log_tail()}"
    last = int(status["next_seq"]) - 1 if "next_seq" in status else None
    assert last is not None, f"no next_seq in the device status: {sorted(status)}"
    assert last * 0.1 >= RUN_DEVICE_S * 0.9, f"the device made only {last + 1} samples"
    wait_all_stored(host, tag, last)
    assert host.stop() == 0, host.log_tail()
    assert_exactly_once(host, tag, last)
    rows = host.posture(tag)
    backfilled = int(sum(1 for r in rows if r.get("backfill") == 1))
    assert backfilled > 0, "no sample came by backfill: the drops did not bite"
