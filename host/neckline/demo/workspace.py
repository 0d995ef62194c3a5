"""Where the demo keeps its files, and the configuration its commands run with.

Everything lives under `<data dir>/demo/` (the data dir is platformdirs' user data directory, or
NECKLINE_DATA_DIR): its own `neckline.toml` (and the allow-list beside it), the service's data
directory, the virtual BLE stack, the headache CSV and the report. Demo data goes into the
`neckline_demo` database of the private local InfluxDB, so it never mixes with a real wearer's
`neckline` database. Each run starts from an empty demo database and workspace (the rendered
traces are kept: they are the same every time).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from neckline.paths import ensure_private_dir

DEMO_DB = "neckline_demo"
KEEP = ("traces",)  # under sim/: deterministic renderings, reused across runs


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config" / "neckline.toml"

    @property
    def host_data(self) -> Path:
        return self.root / "service"

    @property
    def host_log(self) -> Path:
        return self.root / "service.log"

    @property
    def sim(self) -> Path:
        return self.root / "sim"

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def headaches_csv(self) -> Path:
        return self.root / "headaches.csv"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def log(self) -> Path:
        return self.root / "demo.log"

    def reset(self) -> None:
        """Empty the workspace (but the trace cache) and create its directories, 0700."""
        ensure_private_dir(self.root)
        for entry in self.root.iterdir():
            if entry == self.sim and entry.is_dir():
                for sub in entry.iterdir():
                    if sub.name not in KEEP:
                        _remove(sub)
            else:
                _remove(entry)
        for d in (self.config.parent, self.host_data, self.sim, self.history):
            ensure_private_dir(d)

    def write_config(self, influx_url: str) -> Path:
        """The demo's configuration: the local InfluxDB's demo database, short link timings so
        a minute is enough to see data, the workspace as data directory. Created 0600."""
        text = (
            "# Written by `neckline demo`; rewritten on every run.\n"
            f'data_dir = "{self.host_data}"\n\n'
            f'[influx]\nurl = "{influx_url}"\ndatabase = "{DEMO_DB}"\n\n'
            "[devices]\nconnect_bonded = false\n\n"
            "[link]\nscan_timeout = 5.0\nbackoff_base = 0.5\nbackoff_cap = 5.0\n\n"
            "[pipeline]\nstatus_interval_s = 1.0\nbatch_interval_s = 0.2\n\n"
            "[store]\nbatch_max_delay_s = 0.2\n"
        )
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return self.config

    def env(self) -> dict[str, str]:
        """What the demo's subprocesses (`neckline pair`, `run`, `headache`, `correlate`) need."""
        return {"NECKLINE_CONFIG": str(self.config)}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
