"""InvenSense MPU-6050 / MPU-6500 driver (I2C 0x68 or 0x69; WHO_AM_I 0x68 / 0x70 at 0x75).

FIFO frames are accel X,Y,Z then gyro X,Y,Z, 12 bytes, big-endian (FIFO_EN = XG|YG|ZG|ACCEL).
The MPU-6050 overwrites the oldest BYTES when its FIFO is full, which destroys the frame
alignment, so an overflow (INT_STATUS.FIFO_OFLOW_INT, or more bytes than whole frames fit) always
resets the FIFO; the MPU-6500 is set to stop writing when full (CONFIG.FIFO_MODE) instead.
"""

from .imu import ERR_FIFO, ERR_RESET, Imu, _signed, const

_SELF_TEST_X_GYRO = const(0x00)
_SELF_TEST_X = const(0x0D)
_SMPLRT_DIV = const(0x19)
_CONFIG = const(0x1A)
_GYRO_CONFIG = const(0x1B)
_ACCEL_CONFIG = const(0x1C)
_ACCEL_CONFIG2 = const(0x1D)
_FIFO_EN = const(0x23)
_INT_STATUS = const(0x3A)
_ACCEL_XOUT_H = const(0x3B)
_USER_CTRL = const(0x6A)
_PWR_MGMT_1 = const(0x6B)
_FIFO_COUNTH = const(0x72)
_FIFO_R_W = const(0x74)

_FRAME = const(12)
_FIFO_EN_BITS = const(0x78)  # XG, YG, ZG, ACCEL
_USER_FIFO_EN = const(0x40)
_USER_FIFO_RESET = const(0x04)
_PWR_PLL = const(0x01)  # awake, clock from the X gyro PLL
_FIFO_OFLOW = const(0x10)

GYRO_RANGES = (250, 500, 1000, 2000)
GYRO_LSB = (131.0, 65.5, 32.8, 16.4)
ACCEL_RANGES = (2, 4, 8, 16)
# Gyro bandwidth (Hz) of DLPF_CFG 0..6; accel bandwidths are close to these.
DLPF_6050 = (256, 188, 98, 42, 20, 10, 5)
DLPF_6500 = (250, 184, 92, 41, 20, 10, 5)


def _be16(b, o):
    v = (b[o] << 8) | b[o + 1]
    return v - 65536 if v & 0x8000 else v


class Mpu6050(Imu):
    NAME = "MPU-6050"
    WHO_REG = 0x75
    WHO_OK = (0x68, "MPU-6050", 0x70, "MPU-6500")

    def __init__(self, i2c, addr=0x68, self_test_samples=20, **kwargs):
        Imu.__init__(self, i2c, addr, **kwargs)
        self.self_test_samples = self_test_samples
        self._buf = bytearray(_FRAME * self.BURST_SAMPLES)
        mv = memoryview(self._buf)
        # One view per burst length, made once: slicing in the read path would allocate.
        self._views = [mv[: _FRAME * (k + 1)] for k in range(self.BURST_SAMPLES)]
        self._b14 = bytearray(14)
        self._mv14 = memoryview(self._b14)
        self._b4 = bytearray(4)
        self._mv4 = memoryview(self._b4)
        self._fifo_bytes = 1024
        self._regs = None  # planned (CONFIG, ACCEL_CONFIG2, SMPLRT_DIV, GYRO_CONFIG, ACCEL_CONFIG)

    def is_6500(self):
        return self.who_am_i == 0x70

    # ------------------------------------------------------------------------------ set-up
    def _init_chip(self):
        if not self._check_who():
            return False
        self._fifo_bytes = 512 if self.is_6500() else 1024
        self._wr8(_PWR_MGMT_1, 0x80)  # DEVICE_RESET
        self._sleep(100)
        for _ in range(10):
            if not self._rd8(_PWR_MGMT_1) & 0x80:
                break
            self._sleep(10)
        else:
            self.status.last_error = ERR_RESET
            return False
        self._wr8(_PWR_MGMT_1, _PWR_PLL)  # wake from the reset default (sleep)
        self._sleep(10)
        return True

    def _plan(self, odr_hz, accel_range_g, gyro_range_dps, dlpf_hz):
        if accel_range_g not in ACCEL_RANGES:
            raise ValueError("accel range must be 2, 4, 8 or 16 g")
        if gyro_range_dps not in GYRO_RANGES:
            raise ValueError("gyro range must be 250, 500, 1000 or 2000 dps")
        table = DLPF_6500 if self.is_6500() else DLPF_6050
        cfg = len(table) - 1
        for i in range(len(table)):
            if table[i] <= dlpf_hz:
                cfg = i
                break
        internal = 8000 if cfg == 0 else 1000
        if odr_hz <= 0 or odr_hz > internal:
            raise ValueError("output rate must be in (0, %d] Hz with this low-pass" % internal)
        div = int(internal // odr_hz) - 1
        div = max(0, min(255, div))
        afs = ACCEL_RANGES.index(accel_range_g)
        gfs = GYRO_RANGES.index(gyro_range_dps)
        config = cfg | (0x40 if self.is_6500() else 0)  # 6500: FIFO_MODE, stop when full
        self._regs = (config, cfg, div, gfs << 3, afs << 3)
        self.odr_hz = internal / (div + 1)
        self.dlpf_hz = table[cfg]
        self.accel_range_g = accel_range_g
        self.gyro_range_dps = gyro_range_dps
        self._set_scales(16384.0 / (1 << afs), GYRO_LSB[gfs])

    def _apply_config(self):
        if self.is_6500() != bool(self._regs[0] & 0x40):
            c = self._cfg
            self._plan(c[0], c[1], c[2], c[3])  # planned before the chip was identified
        config, a_dlpf, div, gyro, accel = self._regs
        self._wr8(_USER_CTRL, 0x00)
        self._wr8(_FIFO_EN, 0x00)
        self._wr8(_PWR_MGMT_1, _PWR_PLL)
        self._wr8(_CONFIG, config)
        if self.is_6500():
            self._wr8(_ACCEL_CONFIG2, a_dlpf)
        self._wr8(_SMPLRT_DIV, div)
        self._wr8(_GYRO_CONFIG, gyro)
        self._wr8(_ACCEL_CONFIG, accel)
        self._wr8(_USER_CTRL, _USER_FIFO_RESET)
        self._wr8(_FIFO_EN, _FIFO_EN_BITS)
        self._wr8(_USER_CTRL, _USER_FIFO_EN)

    def _config_intact(self):
        if self._rd8(_PWR_MGMT_1) != _PWR_PLL:
            return False
        if not self._rd8(_USER_CTRL) & _USER_FIFO_EN:
            return False
        return self._rd8(_GYRO_CONFIG) == self._regs[3]

    # --------------------------------------------------------------------------- self-test
    def _average(self, out):
        n = self.self_test_samples
        for i in range(6):
            out[i] = 0
        b = self._b14
        for _ in range(n):
            self._sleep(2)
            self._rd(_ACCEL_XOUT_H, self._mv14)
            for i in range(3):
                out[i] += _be16(b, 8 + 2 * i)  # gyro
                out[3 + i] += _be16(b, 2 * i)  # accel
        for i in range(6):
            out[i] = out[i] / n

    def _self_test(self):
        six = self.is_6500()
        a_fs = 0 if six else 2  # the self-test ranges: 250 dps and 8 g (6050) or 2 g (6500)
        self._wr8(_USER_CTRL, 0x00)
        self._wr8(_FIFO_EN, 0x00)
        self._wr8(_SMPLRT_DIV, 0)
        self._wr8(_CONFIG, 2)
        if six:
            self._wr8(_ACCEL_CONFIG2, 2)
        self._wr8(_GYRO_CONFIG, 0x00)
        self._wr8(_ACCEL_CONFIG, a_fs << 3)
        self._sleep(20)
        off = [0.0] * 6
        self._average(off)
        self._wr8(_GYRO_CONFIG, 0xE0)
        self._wr8(_ACCEL_CONFIG, 0xE0 | a_fs << 3)
        self._sleep(20)
        on = [0.0] * 6
        self._average(on)
        self._wr8(_GYRO_CONFIG, 0x00)
        self._wr8(_ACCEL_CONFIG, a_fs << 3)
        resp = [on[i] - off[i] for i in range(6)]
        return self._judge_6500(resp) if six else self._judge_6050(resp)

    def _judge_6050(self, resp):
        self._rd(_SELF_TEST_X, self._mv4)
        t = self._b4
        mask = 0
        for i in range(3):
            g_code = t[i] & 0x1F
            a_code = ((t[i] >> 5) << 2) | ((t[3] >> (4 - 2 * i)) & 0x03)
            ft = 25 * 131 * 1.046 ** (g_code - 1) if g_code else 0.0
            if i == 1:
                ft = -ft
            mask |= self._judge_trim(i, resp[i], ft)
            fa = 4096 * 0.34 * (0.92 / 0.34) ** ((a_code - 1) / 30) if a_code else 0.0
            mask |= self._judge_trim(3 + i, resp[3 + i], fa)
        return mask

    def _judge_trim(self, axis, response, trim):
        # Pass when the response is within 14 % of the factory trim.
        if trim == 0:
            self.self_test_values[axis] = 0.0
            return 1 << axis
        change = (response - trim) / trim
        self.self_test_values[axis] = change
        return 0 if -0.14 <= change <= 0.14 else 1 << axis

    def _judge_6500(self, resp):
        self._rd(_SELF_TEST_X_GYRO, self._mv4[:3])
        g = [self._b4[0], self._b4[1], self._b4[2]]
        self._rd(_SELF_TEST_X, self._mv4[:3])
        a = [self._b4[0], self._b4[1], self._b4[2]]
        mask = 0
        for i in range(3):
            otp = 2620 * 1.01 ** (g[i] - 1) if g[i] else 0.0
            if otp:
                ratio = resp[i] / otp
                self.self_test_values[i] = ratio
                ok = ratio > 0.5
            else:
                self.self_test_values[i] = resp[i] / 131.0
                ok = abs(resp[i]) >= 60 * 131.0
            if not ok:
                mask |= 1 << i
            otp = 2620 * 1.01 ** (a[i] - 1) if a[i] else 0.0
            if otp:
                ratio = resp[3 + i] / otp
                self.self_test_values[3 + i] = ratio
                ok = 0.5 <= ratio <= 1.5
            else:
                mg = abs(resp[3 + i]) / 16.384
                self.self_test_values[3 + i] = mg
                ok = 225 <= mg <= 675
            if not ok:
                mask |= 1 << (3 + i)
        return mask

    # -------------------------------------------------------------------------------- FIFO
    def _fifo_reset(self, discard_bytes):
        st = self.status
        st.fifo_resets += 1
        st.lost += discard_bytes // _FRAME
        self._wr8(_USER_CTRL, 0x00)
        self._wr8(_USER_CTRL, _USER_FIFO_RESET)
        self._wr8(_USER_CTRL, _USER_FIFO_EN)

    def _fifo_read(self, buf, room):
        st = self.status
        ints = self._rd8(_INT_STATUS)
        self._rd(_FIFO_COUNTH, self._mv2)
        count = ((self._b2[0] & 0x1F) << 8) | self._b2[1]
        aligned = (self._fifo_bytes // _FRAME) * _FRAME
        if ints & _FIFO_OFLOW or count > aligned:
            st.overflows += 1
            st.last_error = ERR_FIFO
            self._fifo_reset(count)
            return 0
        total = count // _FRAME
        frames = total
        if frames > room:
            frames = room
        ri0, ri1, ri2 = self._ri
        rs0, rs1, rs2 = self._rs
        b = self._buf
        n = 0
        while n < frames:
            k = frames - n
            if k > self.BURST_SAMPLES:
                k = self.BURST_SAMPLES
            if not self._burst(_FIFO_R_W, self._views[k - 1]):
                # Part of the transfer may already have left the FIFO, so a retry could start
                # mid-frame: realign by resetting it.
                st.last_error = ERR_FIFO
                self._fifo_reset(0)
                st.lost += total - n
                return n
            for f in range(k):
                o = f * _FRAME
                j = (n + f) * 6
                buf[j] = _signed(_be16(b, o + 6 + 2 * ri0), rs0)
                buf[j + 1] = _signed(_be16(b, o + 6 + 2 * ri1), rs1)
                buf[j + 2] = _signed(_be16(b, o + 6 + 2 * ri2), rs2)
                buf[j + 3] = _signed(_be16(b, o + 2 * ri0), rs0)
                buf[j + 4] = _signed(_be16(b, o + 2 * ri1), rs1)
                buf[j + 5] = _signed(_be16(b, o + 2 * ri2), rs2)
            n += k
        return n

