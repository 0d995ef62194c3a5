"""Sample sources for the simulated IMUs: recorded traces of raw int16 samples, or constants.

A source gives the simulated chip what its sensing elements would measure.  Every source has

    accel_lsb_per_g, gyro_lsb_per_dps   the scale its raw numbers are in
    rate_hz                             the rate it was recorded at (None: any time, same value)
    sample_at(t_us, out) -> bool        fill out[0:6] with gx, gy, gz, ax, ay, az (int16, CHIP
                                        axes) current at time t_us; False once a trace has run out
                                        (out then keeps the last sample)

The simulated chip converts these to its own configured full scale, so one trace can be played at
any range.  Time is mapped by zero-order hold: row k covers [k, k+1) / rate_hz seconds.

Trace files (written on the host; docs/imu.md has the full description):

  binary  little-endian; a 20-byte header then 12-byte rows
            0  4s  magic b"NLTR"
            4  u8  version (1)
            5  u8  channels (6)
            6  u16 header size in bytes (20; readers skip anything beyond what they know)
            8  u32 sample rate in millihertz
           12  f32 accelerometer LSB per g of the raw numbers
           16  f32 gyroscope LSB per degree/second of the raw numbers
          rows: int16 gx, gy, gz, ax, ay, az, chip axes

  CSV     '#' lines are comments; any "key=value" words in them set rate_hz, accel_lsb_per_g
          and gyro_lsb_per_dps; the first other line names the columns (gx,gy,gz,ax,ay,az in any
          order, extra columns ignored); then one row of integers per sample.
"""

import struct

MAGIC = b"NLTR"
VERSION = 1
HEADER = "<4sBBHIff"
HEADER_SIZE = 20
ROW = 12
COLUMNS = ("gx", "gy", "gz", "ax", "ay", "az")


def _clamp16(v):
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return v


class ConstantSource:
    """The same sample at all times: a chip lying still, or any fixed rate for a test."""

    def __init__(self, gyro=(0, 0, 0), accel=(0, 0, 16384), accel_lsb_per_g=16384.0,
                 gyro_lsb_per_dps=131.0):
        self.values = [_clamp16(int(v)) for v in tuple(gyro) + tuple(accel)]
        self.accel_lsb_per_g = float(accel_lsb_per_g)
        self.gyro_lsb_per_dps = float(gyro_lsb_per_dps)
        self.rate_hz = None

    def sample_at(self, t_us, out):
        v = self.values
        for i in range(6):
            out[i] = v[i]
        return True


class TraceSource:
    """Plays a trace file (binary or CSV, told apart by the magic) in time."""

    def __init__(self, path, loop=False):
        self.path = path
        self.loop = loop
        self.rows_read = 0
        self.ended = False
        self._row = bytearray(ROW)
        self._cur = [0, 0, 0, 0, 0, 0]
        self._index = -1  # trace row currently held
        self._base = 0  # rows before the current pass, when looping
        self.accel_lsb_per_g = 16384.0
        self.gyro_lsb_per_dps = 131.0
        self.rate_hz = 100.0
        f = open(path, "rb")
        head = f.read(4)
        if head == MAGIC:
            self.binary = True
            rest = f.read(HEADER_SIZE - 4)
            if len(rest) != HEADER_SIZE - 4:
                f.close()
                raise ValueError("truncated trace header")
            _, ver, ch, hsize, rate_mhz, alsb, glsb = struct.unpack(HEADER, head + rest)
            if ver != VERSION or ch != 6 or hsize < HEADER_SIZE:
                f.close()
                raise ValueError("unsupported trace: version %d, %d channels" % (ver, ch))
            if rate_mhz == 0 or alsb <= 0 or glsb <= 0:
                f.close()
                raise ValueError("trace header has a zero rate or scale")
            if hsize > HEADER_SIZE:
                f.read(hsize - HEADER_SIZE)
            self._data_start = hsize
            self.rate_hz = rate_mhz / 1000
            self.accel_lsb_per_g = alsb
            self.gyro_lsb_per_dps = glsb
            self._f = f
        else:
            f.close()
            self.binary = False
            self._f = open(path)
            self._read_csv_header()
        self._rate_mhz = int(self.rate_hz * 1000 + 0.5)

    # -- CSV
    def _read_csv_header(self):
        self._cols = None
        self._lineno = 0
        while True:
            line = self._f.readline()
            self._lineno += 1
            if not line:
                raise ValueError("CSV trace has no column header")
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                for word in line[1:].split():
                    if "=" not in word:
                        continue
                    key, val = word.split("=", 1)
                    if key in ("rate_hz", "accel_lsb_per_g", "gyro_lsb_per_dps"):
                        setattr(self, key, float(val))
                continue
            names = [n.strip() for n in line.split(",")]
            cols = []
            for want in COLUMNS:
                if want not in names:
                    raise ValueError("CSV trace lacks column " + want)
                cols.append(names.index(want))
            self._cols = cols
            self._ncols = len(names)
            break
        if self.rate_hz <= 0 or self.accel_lsb_per_g <= 0 or self.gyro_lsb_per_dps <= 0:
            raise ValueError("CSV trace has a zero rate or scale")
        self._csv_start = self._f.tell()

    def _next_csv(self):
        while True:
            line = self._f.readline()
            self._lineno += 1
            if not line:
                return False
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(",")
            if len(parts) != self._ncols:
                raise ValueError("trace line %d: %d fields, expected %d"
                                 % (self._lineno, len(parts), self._ncols))
            cur = self._cur
            for i in range(6):
                v = int(parts[self._cols[i]])
                if v < -32768 or v > 32767:
                    raise ValueError("trace line %d: %d is not an int16" % (self._lineno, v))
                cur[i] = v
            return True

    # -- binary
    def _next_bin(self):
        n = self._f.readinto(self._row)
        if not n:
            return False
        if n != ROW:
            raise ValueError("trace ends inside a row (%d of %d bytes)" % (n, ROW))
        vals = struct.unpack("<6h", self._row)
        cur = self._cur
        for i in range(6):
            cur[i] = vals[i]
        return True

    def _next(self):
        ok = self._next_bin() if self.binary else self._next_csv()
        if ok:
            self.rows_read += 1
            return True
        if not self.loop or self.rows_read == 0:
            return False
        # Rewind for another pass; time keeps running.
        if self.binary:
            self._f.seek(self._data_start)
            ok = self._next_bin()
        else:
            self._f.seek(self._csv_start)
            ok = self._next_csv()
        if ok:
            self.rows_read += 1
        return ok

    def sample_at(self, t_us, out):
        target = t_us * self._rate_mhz // 1000000000
        while self._index < target and not self.ended:
            if self._next():
                self._index += 1
            else:
                self.ended = True
        cur = self._cur
        for i in range(6):
            out[i] = cur[i]
        return not self.ended

    def close(self):
        self._f.close()


def write_bin(path, rows, rate_hz, accel_lsb_per_g, gyro_lsb_per_dps):
    """Write rows of (gx, gy, gz, ax, ay, az) ints as a binary trace."""
    with open(path, "wb") as f:
        f.write(struct.pack(HEADER, MAGIC, VERSION, 6, HEADER_SIZE, int(rate_hz * 1000 + 0.5),
                            accel_lsb_per_g, gyro_lsb_per_dps))
        for r in rows:
            f.write(struct.pack("<6h", *r))


def write_csv(path, rows, rate_hz, accel_lsb_per_g, gyro_lsb_per_dps):
    """Write rows of (gx, gy, gz, ax, ay, az) ints as a CSV trace."""
    with open(path, "w") as f:
        f.write("# neckline IMU trace v1, chip axes, raw int16\n")
        f.write("# rate_hz=%s accel_lsb_per_g=%s gyro_lsb_per_dps=%s\n"
                % (rate_hz, accel_lsb_per_g, gyro_lsb_per_dps))
        f.write(",".join(COLUMNS) + "\n")
        for r in rows:
            f.write(",".join([str(int(v)) for v in r]) + "\n")
