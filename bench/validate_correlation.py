"""Validation study of `neckline correlate`'s case-crossover analysis on simulated wearers.

    python bench/validate_correlation.py [--null 500] [--power 200] [--prodrome 200]
                                         [--long 80] [--workers 2] [--seed 0]

Every dataset is one simulated person (neckline.sim.simulate_person: realistic wear and strain,
docs/simulation.md) over 12 weeks with about 25 headaches, analysed exactly as the command
does it (default windows 2-6, 6-12, 12-24, 24-48 h; 0-2 h apart; Holm; coverage ≥ 50 %; UTC).
Prints ONE JSON line:

- false_positive_rate: null datasets (no effect) with any window at adjusted p < 0.05;
- power: datasets with a planted OR of 2.5 per hour of strain in 6-12 h whose 6-12 h window
  has adjusted p < 0.05 (power_unadjusted: its unadjusted p < 0.05);
- right_window_rate: of the planted datasets with any adjusted p < 0.05, the share in which
  6-12 h has the smallest p;
- reverse_causation_fp: prodrome-only datasets (posture worsens in the 2 h before onset, no
  effect) with any window beyond 2 h at adjusted p < 0.05; prodrome_window_flagged: the share in
  which the separately reported 0-2 h window has p < 0.05 (what an analysis without the
  exclusion would have "found");
- power_long / long_weeks / long_headaches: the planted effect over a longer diary;
- power_true_exposure: the planted datasets analysed with the wearer's true strain in every
  minute (as if the device were worn day and night): the ceiling that better wear handling
  could reach with this design;
- predicted_power: the sufficiency formula's power for the planted effect, averaged over the
  planted datasets (compare with power);
- info_per_stratum / usable_share: medians over windows of the null datasets (the priors of
  analysis/sufficiency.py);
- exposure: the simulated exposure distribution (strain share of wear per person, median bout
  minutes, share of days not worn, SD of the daily strain share);
- seconds, workers.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import time
from typing import Any

import numpy as np

from neckline.analysis.crossover import CrossoverOptions, case_crossover
from neckline.analysis.exposure import from_arrays
from neckline.analysis.sufficiency import predicted_power, stratum_information
from neckline.analysis.windows import WindowAggregator
from neckline.sim import HeadacheConfig, schedule_bouts, simulate_person

ALPHA = 0.05
WEEKS = 12
LONG_WEEKS = 36
RATE = {"null": 2.1, "power": 2.5, "prodrome": 2.1}  # about 25 headaches in 12 weeks
PLANTED_OR = 2.5
PLANTED = 1  # index of 6-12 h among the default windows


def _dataset(job: tuple[str, int, int]) -> dict[str, Any]:
    kind, seed, weeks = job
    cfg = HeadacheConfig(
        rate_per_week=RATE["power" if kind in ("long", "oracle") else kind],
        log_or_per_hour=math.log(PLANTED_OR) if kind in ("power", "long", "oracle") else 0.0,
        lag_h=(6.0, 12.0),
        prodrome=kind == "prodrome",
    )
    person = simulate_person(seed, days=7.0 * weeks, headache=cfg)
    obs = person.true if kind == "oracle" else person.observed
    series = from_arrays(obs.start, obs.wear_s, obs.strain_s)
    options = CrossoverOptions()
    agg = WindowAggregator(series, options.tz, options.min_coverage, options.min_usual_h)
    results, prodrome = case_crossover(series, person.diary.onset_epoch_s, options, agg)
    n = len(person.diary)
    info = [float(stratum_information(r.x, r.mask).sum()) for r in results]
    out: dict[str, Any] = {
        "kind": kind,
        "headaches": n,
        "p": [r.fit.p_value for r in results],
        "p_adj": [r.p_adjusted for r in results],
        "cases": [r.n_cases for r in results],
        "info_mean": [i / r.n_cases if r.n_cases else math.nan
                      for i, r in zip(info, results, strict=True)],
        "usable": [r.n_cases / n if n else math.nan for r in results],
        "prodrome_p": prodrome.fit.p_value if prodrome else math.nan,
        "predicted": predicted_power(info[PLANTED], math.log(PLANTED_OR), ALPHA, len(results)),
    }
    if kind == "null":
        worn = obs.wear_s.reshape(-1, 1440).sum(axis=1)
        strain = obs.strain_s.reshape(-1, 1440).sum(axis=1)
        day_share = strain[worn > 3600] / worn[worn > 3600]
        start, end = schedule_bouts(person.schedule)
        out["exposure"] = {
            "share": float(obs.strain_s.sum() / obs.wear_s.sum()),
            "bout_min": float(np.median(end - start) / 60.0) if start.size else math.nan,
            "unworn_days": float(np.mean(worn < 60.0)),
            "day_share_sd": float(np.std(day_share)),
        }
    return out


def _flag(values: list[float]) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=1.0) < ALPHA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--null", type=int, default=500)
    parser.add_argument("--power", type=int, default=200)
    parser.add_argument("--prodrome", type=int, default=200)
    parser.add_argument("--long", type=int, default=80)
    parser.add_argument("--oracle", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    base = 100_000 + 10_000 * args.seed
    jobs = ([("null", base + i, WEEKS) for i in range(args.null)]
            + [("power", base + 20_000 + i, WEEKS) for i in range(args.power)]
            + [("prodrome", base + 40_000 + i, WEEKS) for i in range(args.prodrome)]
            + [("long", base + 60_000 + i, LONG_WEEKS) for i in range(args.long)]
            + [("oracle", base + 20_000 + i, WEEKS) for i in range(args.oracle)])
    t0 = time.perf_counter()
    if args.workers > 1:
        with mp.get_context("fork").Pool(args.workers) as pool:
            rows = pool.map(_dataset, jobs, chunksize=4)
    else:
        rows = [_dataset(job) for job in jobs]
    seconds = time.perf_counter() - t0
    by: dict[str, list[dict[str, Any]]] = {
        "null": [], "power": [], "prodrome": [], "long": [], "oracle": []}
    for row in rows:
        by[row["kind"]].append(row)

    def share(mask: np.ndarray) -> float | None:
        return round(float(mask.mean()), 4) if mask.size else None

    null_any = np.array([_flag(r["p_adj"]).any() for r in by["null"]], dtype=bool)
    power_hit = np.array([_flag(r["p_adj"])[PLANTED] for r in by["power"]], dtype=bool)
    power_raw = np.array([_flag(r["p"])[PLANTED] for r in by["power"]], dtype=bool)
    detected = [r for r in by["power"] if _flag(r["p_adj"]).any()]
    right = np.array([int(np.nanargmin(np.nan_to_num(r["p"], nan=2.0))) == PLANTED
                      for r in detected], dtype=bool)
    pro_fp = np.array([_flag(r["p_adj"]).any() for r in by["prodrome"]], dtype=bool)
    pro_win = np.array([_flag([r["prodrome_p"]])[0] for r in by["prodrome"]], dtype=bool)
    long_hit = np.array([_flag(r["p_adj"])[PLANTED] for r in by["long"]], dtype=bool)
    oracle_hit = np.array([_flag(r["p_adj"])[PLANTED] for r in by["oracle"]], dtype=bool)
    null_info = np.array([r["info_mean"] for r in by["null"]], dtype=np.float64)
    null_usable = np.array([r["usable"] for r in by["null"]], dtype=np.float64)
    exposure = [r["exposure"] for r in by["null"]]

    def mean_of(kind: str, key: str) -> float | None:
        values = [r[key] for r in by[kind]]
        return round(float(np.mean(values)), 2) if values else None

    result: dict[str, Any] = {
        "false_positive_rate": share(null_any),
        "null_datasets": len(by["null"]),
        "power": share(power_hit),
        "power_unadjusted": share(power_raw),
        "power_datasets": len(by["power"]),
        "right_window_rate": share(right),
        "reverse_causation_fp": share(pro_fp),
        "prodrome_window_flagged": share(pro_win),
        "prodrome_datasets": len(by["prodrome"]),
        "power_long": share(long_hit),
        "long_weeks": LONG_WEEKS,
        "long_datasets": len(by["long"]),
        "power_true_exposure": share(oracle_hit),
        "mean_headaches": {k: mean_of(k, "headaches") for k in by},
        "predicted_power": mean_of("power", "predicted"),
        "predicted_power_long": mean_of("long", "predicted"),
        "info_per_stratum": round(float(np.nanmedian(np.nanmedian(null_info, axis=0))), 3)
        if null_info.size else None,
        "usable_share": round(float(np.nanmedian(np.nanmedian(null_usable, axis=0))), 3)
        if null_usable.size else None,
        "mean_cases_per_window": [round(float(v), 1) for v in
                                  np.mean([r["cases"] for r in by["null"]], axis=0)]
        if by["null"] else None,
        "exposure": {
            "strain_share_median": round(float(np.median([e["share"] for e in exposure])), 3),
            "strain_share_p5_p95": [round(float(v), 3) for v in
                                    np.percentile([e["share"] for e in exposure], [5, 95])],
            "bout_median_min": round(float(np.median([e["bout_min"] for e in exposure])), 2),
            "unworn_day_share": round(float(np.mean([e["unworn_days"] for e in exposure])), 3),
            "daily_share_sd": round(float(np.mean([e["day_share_sd"] for e in exposure])), 3),
        } if exposure else None,
        "seconds": round(seconds, 1),
        "workers": args.workers,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
