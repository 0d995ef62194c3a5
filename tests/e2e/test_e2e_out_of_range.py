"""End to end, out of range: the wearer is out of range for 30 simulated minutes. Afterwards
the raw ring has delivered what it still held (its last 10 minutes at 10 Hz) and the device's
per-minute summary log covers the rest: InfluxDB has `exposure` rows from device summaries
(source 2) for the minutes that have no raw posture samples.

Shortened: this wearer runs at 15x real time until it is back in range, so the 30 minutes take
2 minutes of wall time. Then it returns to real time: on a real device the backfill races ring
eviction at 10 samples/s, and at 15x the race would be with 150 samples/s (which a loaded CI
machine can lose: backfill throughput here is bounded by the host's CPU, not the radio).
"""

from __future__ import annotations

import time

import numpy as np

from neckline.config import DevicesConfig
from neckline.vsim import SimStack
from tests.e2e.wearer_fixtures import HostService, needs_micropython, stored_seqs, wait_for

pytestmark = needs_micropython

SPEED = 15.0
OUTAGE_DEVICE_S = 1800.0
RING_SAMPLES = 6000  # 10 minutes at 10 Hz (docs/firmware-storage.md)
MINUTE_MS = 60_000


def test_out_of_range_summaries_cover_what_the_ring_cannot(sim: SimStack, host: HostService
                                                           ) -> None:
    wearer = sim.add_wearer(1, speed=SPEED, trace_s=2400.0)
    sim.wait_advertising(1)
    sim.pair(1, host.env)
    host.start()
    tag = DevicesConfig().tag(wearer.address)
    wait_for(lambda: len(stored_seqs(host, tag)[0]) > 600, 90, "a minute of live samples",
             host.log_tail)
    sim.faults.set_in_range(wearer.address, False)
    gone = wearer.status()["next_seq"]
    time.sleep(OUTAGE_DEVICE_S / SPEED)
    wearer.set_speed(1.0)
    back = int(wearer.status()["next_seq"])
    sim.faults.set_in_range(wearer.address, True)
    assert back - gone >= OUTAGE_DEVICE_S * 10 * 0.95, f"only {back - gone} samples out of range"

    def ring_delivered() -> bool:
        seqs = stored_seqs(host, tag)[0]
        return bool(np.isin(np.arange(back - RING_SAMPLES + 50, back), seqs).all())

    wait_for(ring_delivered, 180, "the raw ring's last 10 minutes in InfluxDB", host.log_tail)

    def summary_minutes() -> set[int]:
        rows = host.rows('SELECT "source", "wear_s" FROM "forever"."exposure" '
                         f"WHERE \"device\" = '{tag}' AND \"source\" = 2")
        return {int(r["time"]) // MINUTE_MS for r in rows}

    evicted_minutes = (back - RING_SAMPLES - gone) / 600.0
    wait_for(lambda: len(summary_minutes()) >= evicted_minutes - 2, 120,
             f"device summaries for the ~{evicted_minutes:.0f} minutes without raw samples",
             lambda: f"{len(summary_minutes())} summary minutes\n{host.log_tail()}")
    assert host.stop() == 0, host.log_tail()

    seqs, times = stored_seqs(host, tag)
    assert not np.isin(np.arange(gone + 100, back - RING_SAMPLES - 100), seqs).any(), \
        "samples the ring had overwritten were stored"
    raw_minutes = set((times // MINUTE_MS).tolist())
    from_summaries = summary_minutes()
    assert from_summaries.isdisjoint(raw_minutes), \
        "a device summary was stored for a minute the raw samples cover"
    assert len(from_summaries) >= evicted_minutes - 2
