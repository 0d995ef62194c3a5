"""Does neck strain come before headaches? A time-stratified case-crossover analysis.

    exposure (per minute) + headache log -> lag windows -> conditional logistic regression
    -> Holm-adjusted odds ratios, dose-response, day-level view, sufficiency verdict, summary

docs/analysis.md describes the method, its validation and its limits.
"""

from neckline.analysis.correlation import Correlation, Headaches, correlate
from neckline.analysis.crossover import CrossoverOptions, WindowResult
from neckline.analysis.exposure import ExposureSeries, read_exposure_csv
from neckline.analysis.windows import DEFAULT_WINDOWS, PRODROME_WINDOW, LagWindow, parse_windows

__all__ = [
    "DEFAULT_WINDOWS",
    "PRODROME_WINDOW",
    "Correlation",
    "CrossoverOptions",
    "ExposureSeries",
    "Headaches",
    "LagWindow",
    "WindowResult",
    "correlate",
    "parse_windows",
    "read_exposure_csv",
]
