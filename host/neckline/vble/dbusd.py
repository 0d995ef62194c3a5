"""A private `dbus-daemon` that plays the system bus for the virtual BlueZ.

bleak only talks to BlueZ over the system bus, and reads `DBUS_SYSTEM_BUS_ADDRESS` whenever it
opens a connection. Pointing that variable at a daemon of our own gives the virtual BlueZ a bus
where it may own `org.bluez` without root and without touching the machine's real Bluetooth.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

# Limits are raised far above dbus-daemon's defaults for a custom bus: a notification flood is
# a test scenario here, and the daemon must queue it rather than drop a slow receiver.
_CONFIG = """\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>neckline-vble</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow send_type="signal"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="max_incoming_unix_fds">250000000</limit>
  <limit name="max_outgoing_unix_fds">250000000</limit>
  <limit name="max_replies_per_connection">50000</limit>
  <limit name="reply_timeout">300000</limit>
</busconfig>
"""


class DBusDaemonError(RuntimeError):
    """The private dbus-daemon could not be started."""


@dataclass(frozen=True)
class DBusDaemon:
    """A running private bus: its address (for DBUS_SYSTEM_BUS_ADDRESS) and its process."""

    address: str
    socket_path: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the daemon (by its own pid) and wait for it; kills it if it lingers."""
        proc = self.process
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel SIGTERMs the daemon if its parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def find_dbus_daemon() -> str:
    found = shutil.which("dbus-daemon") or (
        "/usr/bin/dbus-daemon" if Path("/usr/bin/dbus-daemon").exists() else None
    )
    if found is None:
        raise DBusDaemonError(
            "dbus-daemon is not installed (Debian/Ubuntu: `sudo apt-get install dbus-daemon`)"
        )
    return found


def start_dbus_daemon(
    runtime_dir: Path, *, timeout: float = 10.0, die_with_parent: bool = True
) -> DBusDaemon:
    """Start `dbus-daemon --nofork` on a unix socket in `runtime_dir` and wait for its address.

    The daemon prints its address once it listens, so reading that line is the readiness check.
    """
    runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    socket_path = runtime_dir / "system_bus_socket"
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    config = runtime_dir / "dbus.conf"
    config.write_text(_CONFIG.format(socket=socket_path))
    proc = subprocess.Popen(
        [find_dbus_daemon(), "--nofork", "--nopidfile", f"--config-file={config}",
         "--print-address=1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        preexec_fn=_die_with_parent if die_with_parent else None,
    )
    assert proc.stdout is not None
    address = _read_line(proc, timeout)
    if not address:
        proc.kill()
        proc.wait()
        raise DBusDaemonError(f"dbus-daemon exited with status {proc.returncode} before listening")
    log.debug("private dbus-daemon pid %d at %s", proc.pid, address)
    return DBusDaemon(address=address, socket_path=socket_path, process=proc)


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait()
                raise DBusDaemonError(f"dbus-daemon printed no address within {timeout} s")
            if not sel.select(left):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            buf += chunk
    return buf.split(b"\n", 1)[0].decode().strip()
