"""Speed of `neckline correlate`'s analysis: one year of per-minute exposure, 300 headaches.

    python bench/correlate_speed.py [--days 365] [--headaches 300] [--seed 1] [--repeat 3]

Prints ONE JSON line. `analysis_seconds` (best of --repeat) is the whole analysis as the
command runs it: case-crossover in the four default windows and the 0-2 h window, dose-response,
day-level view, sufficiency and summary (`correlate` + `to_json`); the target is ≤ 5 s.
`csv_read_seconds` reads the same year from an exposure CSV and `html_seconds` renders the
report, for context. The exposure is a simulated wearer (neckline.sim, realistic wear);
onsets are drawn at random minutes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from neckline.analysis.correlation import Headaches, correlate
from neckline.analysis.exposure import from_arrays, read_exposure_csv
from neckline.analysis.report import render_html
from neckline.headache.model import HEADACHE_TYPES
from neckline.sim import HeadacheConfig, simulate_person
from neckline.sim.files import write_exposure_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--headaches", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    person = simulate_person(args.seed, days=args.days, headache=HeadacheConfig(rate_per_week=1))
    obs = person.observed
    series = from_arrays(obs.start, obs.wear_s, obs.strain_s)
    rng = np.random.default_rng(args.seed)
    minutes = np.sort(rng.choice(len(series), size=args.headaches, replace=False))
    onsets = (series.start_min + minutes) * 60
    kinds = tuple(rng.choice(HEADACHE_TYPES, size=args.headaches).tolist())
    headaches = Headaches(onsets.astype(np.int64), kinds)
    best = float("inf")
    result = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = correlate(series, headaches)
        result.to_json()
        best = min(best, time.perf_counter() - t0)
    assert result is not None
    t0 = time.perf_counter()
    render_html(result)
    html_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exposure.csv"
        write_exposure_csv(path, obs)
        t0 = time.perf_counter()
        read_exposure_csv(path)
        csv_s = time.perf_counter() - t0
    print(json.dumps({
        "analysis_seconds": round(best, 3),
        "target_seconds": 5.0,
        "minutes": len(series),
        "headaches": args.headaches,
        "cases_per_window": [r.n_cases for r in result.windows],
        "csv_read_seconds": round(csv_s, 2),
        "html_seconds": round(html_s, 3),
    }))


if __name__ == "__main__":
    main()
