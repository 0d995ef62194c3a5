"""ST LSM6DSOX / ISM330DHCX driver (I2C 0x6A or 0x6B; WHO_AM_I 0x6C / 0x6B at 0x0F).

The FIFO runs in continuous mode with gyro and accel batched at the output rate.  Each FIFO word
is a tag byte (sensor, 2-bit time-slot counter, parity) and six little-endian data bytes; words are
burst-read from FIFO_DATA_OUT_TAG (the address wraps 0x7E -> 0x78 on the chip).  A sample is
emitted when the gyro and accel words of one time slot have both arrived; a word whose partner was
lost (overwritten by an overflow, or a failed transfer) is dropped and counted, so pairing never
drifts.
"""

from .imu import ERR_FIFO, ERR_RESET, Imu, _signed, const

_FIFO_CTRL1 = const(0x07)
_FIFO_CTRL2 = const(0x08)
_FIFO_CTRL3 = const(0x09)
_FIFO_CTRL4 = const(0x0A)
_CTRL1_XL = const(0x10)
_CTRL2_G = const(0x11)
_CTRL3_C = const(0x12)
_CTRL4_C = const(0x13)
_CTRL5_C = const(0x14)
_CTRL8_XL = const(0x17)
_CTRL9_XL = const(0x18)
_OUTX_L_G = const(0x22)
_OUTX_L_A = const(0x28)
_FIFO_STATUS1 = const(0x3A)
_FIFO_DATA_OUT_TAG = const(0x78)

_WORD = const(7)
_FIFO_CONTINUOUS = const(0x06)
_CTRL3_BDU_IF_INC = const(0x44)
_CTRL9_VALUE = const(0xE2)  # reset value 0xE0 plus bit 1: I3C_DISABLE (DSOX) / DEVICE_CONF (ISM)
_STATUS2_OVR = const(0x48)  # FIFO_OVR_IA | FIFO_OVR_LATCHED

ODR_HZ = (12.5, 26, 52, 104, 208, 416, 833, 1666, 3332, 6664)  # ODR/BDR codes 1..10
ACCEL_FS = ((2, 0, 0.061), (4, 2, 0.122), (8, 3, 0.244), (16, 1, 0.488))  # g, FS_XL, mg/LSB
GYRO_FS = ((125, 0x02, 4.375), (250, 0x00, 8.75), (500, 0x04, 17.5), (1000, 0x08, 35.0),
           (2000, 0x0C, 70.0), (4000, 0x01, 140.0))  # dps, CTRL2_G bits, mdps/LSB
LPF2_DIV = (4, 10, 20, 45, 100, 200, 400, 800)  # accel LPF2 bandwidth ODR/n for HPCF_XL 0..7

# Self-test windows: accel mg (full-scale independent), gyro dps at 2000 dps.
ST_ACCEL_MG = {0x6C: (50, 1700), 0x6B: (40, 1700)}
ST_GYRO_DPS = (150, 700)


def _le16(b, o):
    v = b[o] | (b[o + 1] << 8)
    return v - 65536 if v & 0x8000 else v


def _odd(t):
    t ^= t >> 4
    t ^= t >> 2
    t ^= t >> 1
    return t & 1


class Lsm6dsox(Imu):
    NAME = "LSM6DSOX"
    WHO_REG = 0x0F
    WHO_OK = (0x6C, "LSM6DSOX", 0x6B, "ISM330DHCX")

    def __init__(self, i2c, addr=0x6A, self_test_samples=5, **kwargs):
        Imu.__init__(self, i2c, addr, **kwargs)
        self.self_test_samples = self_test_samples
        words = 2 * self.BURST_SAMPLES
        self._burst_words = words
        self._buf = bytearray(_WORD * words)
        mv = memoryview(self._buf)
        self._views = [mv[: _WORD * (k + 1)] for k in range(words)]
        self._b6 = bytearray(6)
        self._mv6 = memoryview(self._b6)
        self._pend = [0, 0, 0, 0, 0, 0]  # the half-assembled sample
        self._pflags = 0  # bit0 gyro word held, bit1 accel word held
        self._pcnt = 0
        self._regs = None  # planned (CTRL1_XL, CTRL2_G, CTRL8_XL, FIFO_CTRL3)

    # ------------------------------------------------------------------------------ set-up
    def _init_chip(self):
        if not self._check_who():
            return False
        self._wr8(_CTRL3_C, 0x01)  # SW_RESET
        self._sleep(1)
        for _ in range(10):
            if not self._rd8(_CTRL3_C) & 0x01:
                break
            self._sleep(1)
        else:
            self.status.last_error = ERR_RESET
            return False
        self._wr8(_CTRL3_C, _CTRL3_BDU_IF_INC)
        self._pflags = 0
        return True

    def _plan(self, odr_hz, accel_range_g, gyro_range_dps, dlpf_hz):
        code = 0
        for i in range(len(ODR_HZ)):
            if ODR_HZ[i] >= odr_hz:
                code = i + 1
                break
        if code == 0 or odr_hz <= 0:
            raise ValueError("output rate must be in (0, 6664] Hz")
        xl = None
        for g, bits, mg in ACCEL_FS:
            if g == accel_range_g:
                xl = (bits, 1000.0 / mg)
        if xl is None:
            raise ValueError("accel range must be 2, 4, 8 or 16 g")
        gy = None
        for dps, bits, mdps in GYRO_FS:
            if dps == gyro_range_dps and (dps != 4000 or self.who_am_i != 0x6C):
                gy = (bits, 1000.0 / mdps)
        if gy is None:
            raise ValueError("gyro range must be 125, 250, 500, 1000 or 2000 dps")
        odr = ODR_HZ[code - 1]
        lpf2 = 0
        hpcf = 0
        bw = odr / 2
        if dlpf_hz < odr / 2:
            lpf2 = 0x02
            hpcf = len(LPF2_DIV) - 1
            for i in range(len(LPF2_DIV)):
                if odr / LPF2_DIV[i] <= dlpf_hz:
                    hpcf = i
                    break
            bw = odr / LPF2_DIV[hpcf]
        self._regs = (code << 4 | xl[0] << 2 | lpf2, code << 4 | gy[0], hpcf << 5,
                      code << 4 | code)
        self.odr_hz = odr
        self.dlpf_hz = bw
        self.accel_range_g = accel_range_g
        self.gyro_range_dps = gyro_range_dps
        self._set_scales(xl[1], gy[1])

    def _apply_config(self):
        ctrl1, ctrl2, ctrl8, fifo3 = self._regs
        self._wr8(_FIFO_CTRL4, 0x00)  # bypass: empties the FIFO
        self._wr8(_CTRL1_XL, ctrl1)
        self._wr8(_CTRL2_G, ctrl2)
        self._wr8(_CTRL4_C, 0x00)  # gyro LPF1 off
        self._wr8(_CTRL8_XL, ctrl8)
        self._wr8(_CTRL9_XL, _CTRL9_VALUE)
        self._wr8(_FIFO_CTRL1, 0x00)
        self._wr8(_FIFO_CTRL2, 0x00)
        self._wr8(_FIFO_CTRL3, fifo3)
        self._wr8(_FIFO_CTRL4, _FIFO_CONTINUOUS)
        self._pflags = 0

    def _config_intact(self):
        self._rd(_CTRL1_XL, self._mv2)
        if self._b2[0] != self._regs[0] or self._b2[1] != self._regs[1]:
            return False
        return self._rd8(_FIFO_CTRL4) == _FIFO_CONTINUOUS

    # --------------------------------------------------------------------------- self-test
    def _average(self, reg, out, base, pause_ms):
        n = self.self_test_samples
        self._rd(reg, self._mv6)  # the first sample after a change is discarded
        for i in range(3):
            out[base + i] = 0
        for _ in range(n):
            self._sleep(pause_ms)
            self._rd(reg, self._mv6)
            for i in range(3):
                out[base + i] += _le16(self._b6, 2 * i)
        for i in range(3):
            out[base + i] = out[base + i] / n

    def _self_test(self):
        off = [0.0] * 6
        on = [0.0] * 6
        self._wr8(_FIFO_CTRL4, 0x00)
        self._wr8(_CTRL5_C, 0x00)
        # Accelerometer: 52 Hz, 4 g (0.122 mg/LSB), positive stimulus.
        self._wr8(_CTRL2_G, 0x00)
        self._wr8(_CTRL1_XL, 0x38)
        self._sleep(100)
        self._average(_OUTX_L_A, off, 3, 20)
        self._wr8(_CTRL5_C, 0x01)
        self._sleep(100)
        self._average(_OUTX_L_A, on, 3, 20)
        self._wr8(_CTRL5_C, 0x00)
        self._wr8(_CTRL1_XL, 0x00)
        # Gyroscope: 208 Hz, 2000 dps (70 mdps/LSB), positive stimulus.
        self._wr8(_CTRL2_G, 0x5C)
        self._sleep(100)
        self._average(_OUTX_L_G, off, 0, 5)
        self._wr8(_CTRL5_C, 0x04)
        self._sleep(100)
        self._average(_OUTX_L_G, on, 0, 5)
        self._wr8(_CTRL5_C, 0x00)
        self._wr8(_CTRL2_G, 0x00)
        lo, hi = ST_ACCEL_MG.get(self.who_am_i, (50, 1700))
        mask = 0
        for i in range(3):
            dps = abs(on[i] - off[i]) * 0.070
            self.self_test_values[i] = dps
            if not ST_GYRO_DPS[0] <= dps <= ST_GYRO_DPS[1]:
                mask |= 1 << i
            mg = abs(on[3 + i] - off[3 + i]) * 0.122
            self.self_test_values[3 + i] = mg
            if not lo <= mg <= hi:
                mask |= 1 << (3 + i)
        return mask

    # -------------------------------------------------------------------------------- FIFO
    def _fifo_read(self, buf, room):
        st = self.status
        self._rd(_FIFO_STATUS1, self._mv2)
        s2 = self._b2[1]
        words = self._b2[0] | (s2 & 0x03) << 8
        if s2 & _STATUS2_OVR:
            # Continuous mode overwrote the oldest words: at least one sample is gone, the
            # words themselves stay aligned.
            st.overflows += 1
            st.lost += 1
            st.last_error = ERR_FIFO
        limit = 2 * room - (1 if self._pflags else 0)
        if words > limit:
            words = limit
        ri0, ri1, ri2 = self._ri
        rs0, rs1, rs2 = self._rs
        b = self._buf
        p = self._pend
        n = 0
        while words > 0:
            k = words if words < self._burst_words else self._burst_words
            if not self._burst(_FIFO_DATA_OUT_TAG, self._views[k - 1]):
                # Whole words read before the failure are gone; the tags resynchronise pairing.
                st.last_error = ERR_FIFO
                if self._pflags:
                    st.discarded += 1
                    self._pflags = 0
                st.lost += 1
                return n
            for w in range(k):
                o = w * _WORD
                t = b[o]
                if _odd(t):
                    st.parity_errors += 1
                    st.discarded += 1
                    continue
                tag = t >> 3
                if tag != 1 and tag != 2:
                    st.discarded += 1  # timestamp/temperature/config words: not batched here
                    continue
                cnt = (t >> 1) & 0x03
                if self._pflags and cnt != self._pcnt:
                    st.discarded += 1  # its partner never came
                    st.lost += 1
                    self._pflags = 0
                self._pcnt = cnt
                base = 0 if tag == 1 else 3
                p[base] = _signed(_le16(b, o + 1 + 2 * ri0), rs0)
                p[base + 1] = _signed(_le16(b, o + 1 + 2 * ri1), rs1)
                p[base + 2] = _signed(_le16(b, o + 1 + 2 * ri2), rs2)
                self._pflags |= tag
                if self._pflags == 3:
                    j = n * 6
                    buf[j] = p[0]
                    buf[j + 1] = p[1]
                    buf[j + 2] = p[2]
                    buf[j + 3] = p[3]
                    buf[j + 4] = p[4]
                    buf[j + 5] = p[5]
                    n += 1
                    self._pflags = 0
            words -= k
        return n
