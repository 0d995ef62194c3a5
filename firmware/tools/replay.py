"""Replay a recorded IMU CSV through the firmware's orientation filter and posture code.

    python firmware/tools/replay.py IN.csv OUT.csv [--rate HZ] [--gyro-range DPS] [--accel-range G]
    micropython firmware/tools/replay.py IN.csv OUT.csv [...]

Runs unchanged under CPython and the MicroPython unix port (so no argparse, no os.path), and gives
the same bytes under both: everything after parsing is integer arithmetic.

IN.csv: a header line naming the columns t (s), gx, gy, gz (rad/s), ax, ay, az (m/s^2), in any
order; other columns are ignored. Values are quantised to int16 counts as the IMU would deliver
them (default +-500 deg/s and +-4 g), so the firmware code path is the one a board runs. Rows with
a missing or non-finite value are skipped and counted; values beyond the range saturate (counted).

OUT.csv: t,ux,uy,uz,flexion_deg,lateral_deg: the estimated up vector in the sensor frame (unit
length, 6 decimals) and the posture angles (2 decimals) relative to a neutral taken from the first
run of >= 2 s of stillness (the calibration stillness criteria), or the first 2 s if there is none.
The file is read twice: once to find that neutral, once to write the output.

Exit status: 0 on success, 2 on bad usage or an unusable input file.
"""

import sys


def _script_dir():
    try:
        p = __file__
    except NameError:
        p = sys.argv[0]
    i = p.rfind("/")
    if i < 0:
        return "."
    if i == 0:
        return "/"
    return p[:i]


# The firmware tree is the parent of tools/; strings only, as MicroPython has no os.path.
sys.path.insert(0, _script_dir() + "/..")

from wearable.orient import Orient  # noqa: E402
from wearable.posture import CAL_S, Posture  # noqa: E402

USAGE = ("usage: replay.py IN.csv OUT.csv [--rate HZ] [--gyro-range DPS] [--accel-range G]\n"
         "  IN.csv columns (header line): t, gx, gy, gz (rad/s), ax, ay, az (m/s^2)\n")
COLUMNS = ("t", "gx", "gy", "gz", "ax", "ay", "az")
G = 9.80665
DEG_PER_RAD = 57.29577951308232
RATE_PROBE_ROWS = 256
MAX_REPORTED = 5


class UsageError(Exception):
    pass


def _number(text, what):
    try:
        v = float(text)
    except ValueError:
        raise UsageError("bad " + what + ": " + text)
    if not v > 0.0:
        raise UsageError(what + " must be positive: " + text)
    return v


def parse_args(argv):
    opts = {"rate": None, "gyro_range": 500.0, "accel_range": 4.0}
    names = {"--rate": "rate", "--gyro-range": "gyro_range", "--accel-range": "accel_range"}
    pos = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            raise UsageError("")
        key = None
        val = None
        for flag in names:
            if a == flag:
                key = names[flag]
                if i + 1 >= len(argv):
                    raise UsageError(flag + " needs a value")
                val = argv[i + 1]
                i += 1
            elif a.startswith(flag + "="):
                key = names[flag]
                val = a[len(flag) + 1:]
        if key is not None:
            opts[key] = _number(val, key.replace("_", " "))
        elif a.startswith("--"):
            raise UsageError("unknown option " + a)
        else:
            pos.append(a)
        i += 1
    if len(pos) != 2:
        raise UsageError("need IN.csv and OUT.csv")
    return pos[0], pos[1], opts


def _header(f, path):
    line = f.readline()
    if not line:
        raise UsageError(path + ": empty file")
    names = [c.strip() for c in line.strip().split(",")]
    cols = {}
    for c in COLUMNS:
        if c in names:
            cols[c] = names.index(c)
        elif c != "t":
            raise UsageError(path + ": missing column " + c + " (have: " + ",".join(names) + ")")
    return cols


def _finite(v):
    return v == v and v - v == 0.0


class Rows:
    """Stream IN.csv as (t text, raw int16 gyro and accel); counts what it rejects."""

    def __init__(self, path, gyro_range, accel_range):
        self.path = path
        self.gk = DEG_PER_RAD * 32768.0 / gyro_range  # counts per rad/s
        self.ak = 32768.0 / accel_range / G  # counts per m/s^2
        self.rejected = 0
        self.saturated = 0
        self.raw = [0] * 6

    def _count(self, v):
        r = int(v + 0.5) if v >= 0.0 else -int(-v + 0.5)
        if r > 32767:
            self.saturated += 1
            return 32767
        if r < -32768:
            self.saturated += 1
            return -32768
        return r

    def __iter__(self):
        f = open(self.path)
        try:
            cols = _header(f, self.path)
            need = max(cols.values()) + 1
            it = cols.get("t", -1)
            idx = [cols[c] for c in COLUMNS[1:]]
            lineno = 1
            raw = self.raw
            for line in f:
                lineno += 1
                line = line.strip()
                if not line:
                    continue
                parts = line.split(",")
                ok = len(parts) >= need
                if ok:
                    try:
                        for k in range(6):
                            v = float(parts[idx[k]])
                            if not _finite(v):
                                ok = False
                                break
                            raw[k] = self._count(v * (self.gk if k < 3 else self.ak))
                    except ValueError:
                        ok = False
                if not ok:
                    self.rejected += 1
                    if self.rejected <= MAX_REPORTED:
                        sys.stderr.write("replay: %s line %d skipped: %s\n"
                                         % (self.path, lineno, line[:80]))
                    continue
                yield (parts[it].strip() if it >= 0 else "", raw)
        finally:
            f.close()


def estimate_rate(path):
    """Sample rate from the median step of t over the first rows, rounded to 1 mHz."""
    f = open(path)
    try:
        cols = _header(f, path)
        if "t" not in cols:
            raise UsageError(path + ": no t column; pass --rate")
        it = cols["t"]
        ts = []
        for line in f:
            parts = line.strip().split(",")
            if len(parts) <= it:
                continue
            try:
                v = float(parts[it])
            except ValueError:
                continue
            if _finite(v):
                ts.append(v)
            if len(ts) > RATE_PROBE_ROWS:
                break
    finally:
        f.close()
    steps = sorted(ts[i + 1] - ts[i] for i in range(len(ts) - 1) if ts[i + 1] > ts[i])
    if not steps:
        raise UsageError(path + ": cannot derive the rate from t (need 2 increasing times); "
                         "pass --rate")
    step = steps[len(steps) // 2]
    return int(1000.0 / step + 0.5) / 1000.0


def _isqrt(n):
    if n <= 0:
        return 0
    x = n
    y = (x + 1) // 2
    while y < x:
        x = y
        y = (x + n // x) // 2
    return x


def _fixed(v, digits):
    """Integer v scaled by 10**digits, as decimal text (same bytes under every interpreter)."""
    sign = "-" if v < 0 else ""
    if v < 0:
        v = -v
    p = 10 ** digits
    return "%s%d.%0*d" % (sign, v // p, digits, v % p)


def find_neutral(rows, orient, cal_n):
    """First pass: mean Q14 up vector over the first still run, or over the first cal_n samples."""
    h = [0, 0, 0]
    run = [0, 0, 0]
    first = [0, 0, 0]
    nfirst = 0
    found = None
    t_found = ""
    for t, raw in rows:
        orient.update(raw[0], raw[1], raw[2], raw[3], raw[4], raw[5])
        if not orient.ready():
            continue
        orient.up_q14(h)
        if nfirst < cal_n:
            for k in range(3):
                first[k] += h[k]
            nfirst += 1
        k_still = orient.still_samples()
        if k_still == 0:
            continue
        if k_still == 1:
            run[0] = run[1] = run[2] = 0
        for k in range(3):
            run[k] += h[k]
        if k_still >= cal_n:
            found = run
            t_found = t
            break
    if found is not None:
        return found, "still window ending at t=" + t_found
    if nfirst == 0:
        return None, ""
    return first, "first %d samples (no still window)" % nfirst


def replay(src, dst, opts):
    rate = opts["rate"]
    if rate is None:
        rate = estimate_rate(src)
    lsb_dps = 32768.0 / opts["gyro_range"]
    lsb_g = 32768.0 / opts["accel_range"]
    cal_n = int(CAL_S * rate + 0.5)

    rows = Rows(src, opts["gyro_range"], opts["accel_range"])
    neutral, how = find_neutral(rows, Orient(rate, lsb_dps, lsb_g), cal_n)
    if neutral is None:
        raise UsageError(src + ": no usable samples")

    orient = Orient(rate, lsb_dps, lsb_g)
    posture = Posture(orient)
    posture.set_neutral(neutral[0], neutral[1], neutral[2])
    rows = Rows(src, opts["gyro_range"], opts["accel_range"])
    n = 0
    s = orient.s
    out = open(dst, "w")
    try:
        out.write("t,ux,uy,uz,flexion_deg,lateral_deg\n")
        for t, raw in rows:
            orient.update(raw[0], raw[1], raw[2], raw[3], raw[4], raw[5])
            if not orient.ready():
                continue
            posture.update()
            ux = s[0]
            uy = s[1]
            uz = s[2]
            norm2 = 2 * _isqrt(ux * ux + uy * uy + uz * uz)
            out.write("%s,%s,%s,%s,%s,%s\n" % (
                t,
                _fixed((2000000 * ux + norm2 // 2) // norm2, 6),
                _fixed((2000000 * uy + norm2 // 2) // norm2, 6),
                _fixed((2000000 * uz + norm2 // 2) // norm2, 6),
                _fixed(posture.flexion_cd, 2),
                _fixed(posture.lateral_cd, 2),
            ))
            n += 1
    finally:
        out.close()
    sys.stderr.write("replay: %d samples at %s Hz; neutral from the %s; %d rows skipped, "
                     "%d values saturated, %d samples without accel\n"
                     % (n, rate, how, rows.rejected, rows.saturated, orient.rejected()))
    return n


def main(argv):
    try:
        src, dst, opts = parse_args(argv)
        replay(src, dst, opts)
    except UsageError as e:
        msg = str(e)
        if msg:
            sys.stderr.write("replay: " + msg + "\n")
        sys.stderr.write(USAGE)
        return 2
    except OSError as e:
        sys.stderr.write("replay: cannot open a file: " + str(e) + "\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
