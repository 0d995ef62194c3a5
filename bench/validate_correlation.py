"""Validation study of `neckline correlate`'s case-crossover analysis on simulated wearers.

    python bench/validate_correlation.py [--null 500] [--power 200] [--prodrome 200]
                                         [--aftermath 200] [--long 80] [--oracle 100]
                                         [--workers 1] [--seed 0]
    python bench/validate_correlation.py --sweep [--sweep-datasets 100] [--workers 1]

Every dataset is one simulated person (neckline.sim.simulate_person: realistic wear and strain,
docs/simulation.md) over 12 weeks with about 25 headaches, analysed exactly as the command
does it (default windows 2-6, 6-12, 12-24, 24-48 h; one-sided tests; Holm; 0-2 h apart;
coverage ≥ 50 %; UTC). Prints ONE JSON line:

- false_positive_rate: null datasets (no effect) with any window at adjusted p < 0.05;
- power: datasets with a planted OR of 2.5 per hour of strain in 6-12 h whose 6-12 h window
  has adjusted p < 0.05 (power_unadjusted: its unadjusted p < 0.05);
- right_window_rate: of the planted datasets with any adjusted p < 0.05, the share in which
  6-12 h has the smallest p;
- reverse_causation_fp: prodrome-only datasets (posture worsens in the 2 h before onset, no
  effect) with any window beyond 2 h at adjusted p < 0.05; prodrome_window_flagged: the share in
  which the separately reported 0-2 h window has p < 0.05 (what an analysis without the
  exclusion would have "found");
- aftermath_fp: null datasets in which the wearer has no sustained strain in the 12 h after
  each onset (lying down with the headache, device still worn), any window at adjusted
  p < 0.05. The simulator does not model this; the bench edits the exposure.
- *_two_sided: the same datasets with two-sided tests (`neckline correlate --two-sided`);
- power_long / long_weeks: the planted effect over a longer diary;
- power_true_exposure: the planted datasets analysed with the wearer's true strain in every
  minute (as if the device were worn day and night);
- predicted_power: the sufficiency formula's power for the planted effect, averaged over the
  planted datasets (compare with power);
- info_per_stratum / usable_share: medians over windows of the null datasets (the priors of
  analysis/sufficiency.py);
- exposure: the simulated exposure distribution (strain share of wear per person, median bout
  minutes, share of days not worn, SD of the daily strain share; within-clock-time SD of the
  true strain hours in a 6 h window);
- seconds, workers.

With --sweep it prints instead the power (one- and two-sided) by diary length (OR 2.5) and by
planted odds ratio (12 weeks), --sweep-datasets planted datasets per point.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from neckline.analysis.clr import holm
from neckline.analysis.crossover import CrossoverOptions, case_crossover
from neckline.analysis.exposure import from_arrays
from neckline.analysis.sufficiency import predicted_power, window_information
from neckline.analysis.windows import WindowAggregator
from neckline.sim import HeadacheConfig, schedule_bouts, simulate_person
from neckline.sim.exposure import strain_window_hours

ALPHA = 0.05
WEEKS = 12
LONG_WEEKS = 36
RATE = {"null": 2.1, "power": 2.5, "prodrome": 2.1, "aftermath": 2.1}  # ~25 in 12 weeks
PLANTED_OR = 2.5
PLANTED = 1  # index of 6-12 h among the default windows
AFTERMATH_H = 12
SWEEP_WEEKS = (12, 16, 20, 24, 36)
SWEEP_OR = (2.0, 2.5, 3.0, 4.0, 5.0)

Job = tuple[str, int, int, float]  # kind, seed, weeks, planted OR


def _aftermath(strain: np.ndarray, start_s: int, onsets: np.ndarray) -> np.ndarray:
    out = strain.copy()
    for onset in onsets.tolist():
        first = (int(onset) - start_s) // 60
        out[max(first, 0):max(first + AFTERMATH_H * 60, 0)] = 0.0
    return out


def _dataset(job: Job) -> dict[str, Any]:
    kind, seed, weeks, planted_or = job
    planted = kind in ("power", "long", "oracle")
    cfg = HeadacheConfig(
        rate_per_week=RATE.get(kind, RATE["power"]),
        log_or_per_hour=math.log(planted_or) if planted else 0.0,
        lag_h=(6.0, 12.0),
        prodrome=kind == "prodrome",
    )
    person = simulate_person(seed, days=7.0 * weeks, headache=cfg)
    obs = person.true if kind == "oracle" else person.observed
    strain = obs.strain_s
    onsets = person.diary.onset_epoch_s
    if kind == "aftermath":
        strain = _aftermath(strain, int(obs.start.timestamp()), onsets)
    series = from_arrays(obs.start, obs.wear_s, strain)
    options = CrossoverOptions()
    agg = WindowAggregator(series, options.tz, options.min_coverage, options.min_usual_h)
    results, prodrome = case_crossover(series, onsets, options, agg)
    n = len(person.diary)
    info = [window_information(r.x, r.mask, r.z) for r in results]
    p_two = [r.fit.p_two_sided for r in results]
    out: dict[str, Any] = {
        "kind": kind,
        "weeks": weeks,
        "odds_ratio": planted_or,
        "headaches": n,
        "p": [r.fit.p_value for r in results],
        "p_adj": [r.p_adjusted for r in results],
        "p_two": p_two,
        "p_two_adj": holm(p_two),
        "cases": [r.n_cases for r in results],
        "info_mean": [i / r.n_cases if r.n_cases else math.nan
                      for i, r in zip(info, results, strict=True)],
        "usable": [r.n_cases / n if n else math.nan for r in results],
        "prodrome_p": prodrome.fit.p_value if prodrome else math.nan,
        "predicted": predicted_power(info[PLANTED], math.log(planted_or), ALPHA,
                                     len(results)),
        "beta": results[PLANTED].fit.beta,
    }
    if kind == "null":
        worn = obs.wear_s.reshape(-1, 1440).sum(axis=1)
        day_strain = obs.strain_s.reshape(-1, 1440).sum(axis=1)
        day_share = day_strain[worn > 3600] / worn[worn > 3600]
        start, end = schedule_bouts(person.schedule)
        hours, complete = strain_window_hours(person.true.strain_s, (6.0, 12.0))
        by_clock = np.where(complete, hours, np.nan).reshape(-1, 1440)
        out["exposure"] = {
            "share": float(obs.strain_s.sum() / obs.wear_s.sum()),
            "bout_min": float(np.median(end - start) / 60.0) if start.size else math.nan,
            "unworn_days": float(np.mean(worn < 60.0)),
            "day_share_sd": float(np.std(day_share)),
            "window_sd_h": float(np.sqrt(np.nanmean(np.nanvar(by_clock, axis=0)))),
        }
    return out


def _flag(values: Sequence[float]) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=1.0) < ALPHA


def _run(jobs: list[Job], workers: int) -> list[dict[str, Any]]:
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            return pool.map(_dataset, jobs, chunksize=4)
    return [_dataset(job) for job in jobs]


def _share(mask: np.ndarray) -> float | None:
    return round(float(mask.mean()), 4) if mask.size else None


def _power(rows: list[dict[str, Any]], key: str = "p_adj") -> float | None:
    return _share(np.array([_flag(r[key])[PLANTED] for r in rows], dtype=bool))


def _any(rows: list[dict[str, Any]], key: str = "p_adj") -> float | None:
    return _share(np.array([_flag(r[key]).any() for r in rows], dtype=bool))


def _mean(rows: list[dict[str, Any]], key: str, digits: int = 2) -> float | None:
    """Mean over the finite values (a separated fit's ±inf would make it, and the JSON line,
    infinite)."""
    values = [r[key] for r in rows if math.isfinite(r[key])]
    return round(float(np.mean(values)), digits) if values else None


def _sweep(args: argparse.Namespace) -> dict[str, Any]:
    base = 500_000 + 10_000 * args.seed
    n = args.sweep_datasets
    jobs = [("power", base + i, w, PLANTED_OR) for w in SWEEP_WEEKS for i in range(n)]
    jobs += [("power", base + i, WEEKS, o) for o in SWEEP_OR if o != PLANTED_OR
             for i in range(n)]
    t0 = time.perf_counter()
    rows = _run(jobs, args.workers)
    seconds = time.perf_counter() - t0

    def point(sel: list[dict[str, Any]]) -> dict[str, Any]:
        return {"power": _power(sel), "power_two_sided": _power(sel, "p_two_adj"),
                "power_unadjusted": _power(sel, "p"),
                "predicted_power": _mean(sel, "predicted"),
                "mean_headaches": _mean(sel, "headaches", 1), "datasets": len(sel)}

    by_weeks = {str(w): point([r for r in rows if r["weeks"] == w
                               and r["odds_ratio"] == PLANTED_OR]) for w in SWEEP_WEEKS}
    by_or = {f"{o:g}": point([r for r in rows if r["weeks"] == WEEKS and r["odds_ratio"] == o])
             for o in SWEEP_OR}
    return {"power_by_weeks": by_weeks, "power_by_odds_ratio_12_weeks": by_or,
            "planted_odds_ratio": PLANTED_OR, "seconds": round(seconds, 1),
            "workers": args.workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--null", type=int, default=500)
    parser.add_argument("--power", type=int, default=200)
    parser.add_argument("--prodrome", type=int, default=200)
    parser.add_argument("--aftermath", type=int, default=200)
    parser.add_argument("--long", type=int, default=80)
    parser.add_argument("--oracle", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", action="store_true",
                        help="power by diary length and by odds ratio instead")
    parser.add_argument("--sweep-datasets", type=int, default=100)
    args = parser.parse_args()
    if args.sweep:
        print(json.dumps(_sweep(args)))
        return
    base = 100_000 + 10_000 * args.seed
    jobs: list[Job] = (
        [("null", base + i, WEEKS, 1.0) for i in range(args.null)]
        + [("power", base + 20_000 + i, WEEKS, PLANTED_OR) for i in range(args.power)]
        + [("prodrome", base + 40_000 + i, WEEKS, 1.0) for i in range(args.prodrome)]
        + [("aftermath", base + 80_000 + i, WEEKS, 1.0) for i in range(args.aftermath)]
        + [("long", base + 60_000 + i, LONG_WEEKS, PLANTED_OR) for i in range(args.long)]
        + [("oracle", base + 20_000 + i, WEEKS, PLANTED_OR) for i in range(args.oracle)])
    t0 = time.perf_counter()
    rows = _run(jobs, args.workers)
    seconds = time.perf_counter() - t0
    by: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("null", "power", "prodrome", "aftermath", "long", "oracle")}
    for row in rows:
        by[row["kind"]].append(row)

    detected = [r for r in by["power"] if _flag(r["p_adj"]).any()]
    right = np.array([int(np.nanargmin(np.nan_to_num(r["p"], nan=2.0))) == PLANTED
                      for r in detected], dtype=bool)
    pro_win = np.array([_flag([r["prodrome_p"]])[0] for r in by["prodrome"]], dtype=bool)
    null_info = np.array([r["info_mean"] for r in by["null"]], dtype=np.float64)
    null_usable = np.array([r["usable"] for r in by["null"]], dtype=np.float64)
    exposure = [r["exposure"] for r in by["null"]]

    def median_of(key: str) -> float:
        return float(np.median([e[key] for e in exposure]))

    result: dict[str, Any] = {
        "false_positive_rate": _any(by["null"]),
        "null_datasets": len(by["null"]),
        "power": _power(by["power"]),
        "power_unadjusted": _power(by["power"], "p"),
        "power_datasets": len(by["power"]),
        "right_window_rate": _share(right),
        "reverse_causation_fp": _any(by["prodrome"]),
        "prodrome_window_flagged": _share(pro_win),
        "prodrome_datasets": len(by["prodrome"]),
        "aftermath_fp": _any(by["aftermath"]),
        "aftermath_datasets": len(by["aftermath"]),
        "false_positive_rate_two_sided": _any(by["null"], "p_two_adj"),
        "power_two_sided": _power(by["power"], "p_two_adj"),
        "reverse_causation_fp_two_sided": _any(by["prodrome"], "p_two_adj"),
        "aftermath_fp_two_sided": _any(by["aftermath"], "p_two_adj"),
        "power_long": _power(by["long"]),
        "long_weeks": LONG_WEEKS,
        "long_datasets": len(by["long"]),
        "power_true_exposure": _power(by["oracle"]),
        "mean_headaches": {k: _mean(v, "headaches") for k, v in by.items()},
        "mean_log_or_6_12h": _mean(by["power"], "beta", 3),
        "planted_log_or": round(math.log(PLANTED_OR), 3),
        "predicted_power": _mean(by["power"], "predicted"),
        "predicted_power_long": _mean(by["long"], "predicted"),
        "info_per_stratum": round(float(np.nanmedian(np.nanmedian(null_info, axis=0))), 3)
        if null_info.size else None,
        "usable_share": round(float(np.nanmedian(np.nanmedian(null_usable, axis=0))), 3)
        if null_usable.size else None,
        "mean_cases_per_window": [round(float(v), 1) for v in
                                  np.mean([r["cases"] for r in by["null"]], axis=0)]
        if by["null"] else None,
        "exposure": {
            "strain_share_median": round(median_of("share"), 3),
            "strain_share_p5_p95": [round(float(v), 3) for v in
                                    np.percentile([e["share"] for e in exposure], [5, 95])],
            "bout_median_min": round(median_of("bout_min"), 2),
            "unworn_day_share": round(float(np.mean([e["unworn_days"] for e in exposure])), 3),
            "daily_share_sd": round(float(np.mean([e["day_share_sd"] for e in exposure])), 3),
            "window_6h_sd_h": round(median_of("window_sd_h"), 3),
        } if exposure else None,
        "seconds": round(seconds, 1),
        "workers": args.workers,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
