"""Run a private InfluxDB 1.x server (Debian's `influxd`) on loopback.

This is Neckline's embedded default: `neckline influx start|stop|status`, `make demo` and the
pytest fixture all use this one launcher. The server listens on 127.0.0.1 only, with every
directory under one root so that nothing of it lives elsewhere on the machine. Its ports are free
ones picked at the first start and remembered in the root (`ports.json`), so the URL stays the
same across restarts (Grafana's datasource and the demo's configuration keep working); only when
a remembered port has been taken by something else are new ones picked.

A small state file in the root records the pid and URL, so that `status` and `stop` work from
another process. The pid is trusted only if that process is still an `influxd` started with our
config file, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from neckline.errors import InfluxNotInstalled, InfluxStartError
from neckline.influxql import ping
from neckline.paths import ensure_private_dir

log = logging.getLogger(__name__)

STATE_FILE = "influxd.json"
CONFIG_FILE = "influxd.conf"
LOG_FILE = "influxd.log"
PORTS_FILE = "ports.json"
_PR_SET_PDEATHSIG = 1

INSTALL_HINT = (
    "influxd is not installed. On Debian/Ubuntu: `sudo apt-get install influxdb` "
    "(or run `make setup`), or point Neckline at an existing server with INFLUX_URL."
)


@dataclass(frozen=True)
class InfluxdState:
    pid: int
    url: str
    port: int
    rpc_port: int
    root: str
    started_at: float


def find_influxd(binary: str | None = None) -> str:
    """Path of the influxd binary, or a clear error telling how to install it."""
    candidate = binary or os.environ.get("NECKLINE_INFLUXD") or "influxd"
    found = shutil.which(candidate)
    if found is None:
        raise InfluxNotInstalled(INSTALL_HINT)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _two_free_ports() -> tuple[int, int]:
    port, rpc_port = free_port(), free_port()
    while rpc_port == port:
        rpc_port = free_port()
    return port, rpc_port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def render_config(root: Path, port: int, rpc_port: int) -> str:
    """influxd 1.6 configuration: loopback only, no phoning home, everything under `root`."""
    return f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root / 'meta'}"

[data]
  dir = "{root / 'data'}"
  wal-dir = "{root / 'wal'}"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  max-body-size = 50000000

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = true
  log-enabled = false
  run-interval = "1m"

[logging]
  level = "warn"
"""


def _die_with_parent() -> None:
    """Runs in the child before exec: make the kernel SIGTERM it if its parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class LocalInfluxd:
    """One private influxd whose files all live under `root`."""

    def __init__(self, root: Path, binary: str | None = None) -> None:
        self.root = Path(root)
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def log_path(self) -> Path:
        return self.root / LOG_FILE

    # -- state -----------------------------------------------------------------------------

    def read_state(self) -> InfluxdState | None:
        try:
            raw = json.loads(self.state_path.read_text())
            return InfluxdState(**raw)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", self.state_path, exc)
            return None

    def _is_ours(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        if not cmdline or not cmdline[0].endswith(b"influxd"):
            return False
        return str(self.root / CONFIG_FILE).encode() in cmdline

    def running(self) -> InfluxdState | None:
        """The state of our server if its process is alive, else None (stale state is removed)."""
        state = self.read_state()
        if state is None:
            return None
        if self._is_ours(state.pid):
            return state
        log.info("removing stale influxd state for pid %d", state.pid)
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        return None

    # -- start / stop ----------------------------------------------------------------------

    def start(self, *, timeout: float = 30.0, die_with_parent: bool = False) -> InfluxdState:
        """Start the server (or return the one already running) and wait until `/ping` answers.

        `die_with_parent` ties the server's life to this process, for tests and the demo; the
        command line leaves it detached so that it outlives `neckline influx start`.
        """
        existing = self.running()
        if existing is not None:
            if ping(existing.url):
                return existing
            raise InfluxStartError(
                f"influxd (pid {existing.pid}) is running but not answering at {existing.url}; "
                f"see {self.log_path}"
            )
        binary = find_influxd(self._binary)
        ensure_private_dir(self.root)
        last_error = ""
        remembered = self._remembered_ports()
        for attempt in range(4):
            ports = remembered if attempt == 0 and remembered else _two_free_ports()
            try:
                state = self._start_once(binary, timeout, die_with_parent, ports)
            except _PortTaken as exc:
                last_error = str(exc)
                continue
            if ports != remembered:
                self._remember_ports(ports)
            return state
        raise InfluxStartError(f"influxd could not bind a free port: {last_error}")

    @property
    def ports_path(self) -> Path:
        return self.root / PORTS_FILE

    def _remembered_ports(self) -> tuple[int, int] | None:
        """The ports of earlier starts, if both are still free."""
        try:
            raw = json.loads(self.ports_path.read_text())
            ports = (int(raw["port"]), int(raw["rpc_port"]))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable %s: %s", self.ports_path, exc)
            return None
        if ports[0] == ports[1] or not all(_port_free(p) for p in ports):
            log.info("the remembered influxd ports %s are taken; picking new ones", ports)
            return None
        return ports

    def _remember_ports(self, ports: tuple[int, int]) -> None:
        self.ports_path.write_text(json.dumps({"port": ports[0], "rpc_port": ports[1]}) + "\n")

    def _start_once(self, binary: str, timeout: float, die_with_parent: bool,
                    ports: tuple[int, int]) -> InfluxdState:
        port, rpc_port = ports
        conf = self.root / CONFIG_FILE
        conf.write_text(render_config(self.root, port, rpc_port))
        logfile = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [binary, "run", "-config", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=not die_with_parent,
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        finally:
            logfile.close()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self._log_tail()
                if "address already in use" in tail:
                    raise _PortTaken(tail)
                raise InfluxStartError(
                    f"influxd exited with status {proc.returncode} during start-up:\n{tail}"
                )
            if ping(url, timeout=0.5):
                state = InfluxdState(
                    pid=proc.pid, url=url, port=port, rpc_port=rpc_port,
                    root=str(self.root), started_at=time.time(),
                )
                self.state_path.write_text(json.dumps(asdict(state), indent=2) + "\n")
                self._proc = proc
                log.info("influxd pid %d ready at %s", proc.pid, url)
                return state
            time.sleep(0.1)
        _terminate(proc.pid, grace=5.0)
        proc.wait()
        raise InfluxStartError(
            f"influxd did not answer /ping within {timeout:.0f} s; see {self.log_path}"
        )

    def stop(self, *, grace: float = 30.0) -> bool:
        """Shut down cleanly: SIGTERM, then SIGKILL after `grace` s. False if it was not running."""
        state = self.running()
        if state is None:
            return False
        _terminate(state.pid, grace=grace, proc=self._proc)
        self._proc = None
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        log.info("influxd pid %d stopped", state.pid)
        return True

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class _PortTaken(Exception):
    pass


def _terminate(
    pid: int, *, grace: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM `pid`, wait up to `grace` seconds for it to go, then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not _alive(pid):
            return
        time.sleep(0.05)
    log.warning("influxd pid %d ignored SIGTERM for %.0f s; killing it", pid, grace)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait()


def _alive(pid: int) -> bool:
    try:
        # A zombie child of ours still "exists"; reap it if it is ours, else treat as dead.
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return False
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def temporary_influxd(root: Path, binary: str | None = None) -> Iterator[InfluxdState]:
    """A server that lives for one `with` block (the pytest fixture and benchmarks use it)."""
    server = LocalInfluxd(root, binary)
    state = server.start(die_with_parent=True)
    try:
        yield state
    finally:
        server.stop(grace=15.0)
