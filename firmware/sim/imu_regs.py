"""Simulated register maps of the MPU-6050/6500 and LSM6DSOX/ISM330DHCX, fed by a sample source.

Attach one to a machine.SimBus and the firmware driver talks to it exactly as to the chip: same
register addresses, WHO_AM_I values, reset values, configuration bits (range, output rate, low-pass,
FIFO set-up, self-test), byte order (MPU big-endian, ST little-endian) and FIFO behaviour:

  MPU-6050  1024-byte FIFO read through FIFO_R_W (0x74, no address increment); frames hold the
            enabled registers in register order; when full the oldest BYTES are overwritten, so the
            frame boundary is lost, and INT_STATUS.FIFO_OFLOW_INT is set (cleared on read).
  MPU-6500  512 bytes; CONFIG.FIFO_MODE=1 stops writing when full instead of overwriting.
  LSM6DSOX  512 words of 7 bytes (tag + 6 data) read from FIFO_DATA_OUT_TAG..Z_H (0x78..0x7E); the
            word is popped when 0x7E is read and the address wraps back to 0x78, so many words can
            be burst-read in one transaction; the tag holds sensor, a 2-bit slot counter and an even
            parity bit; continuous mode overwrites whole words and sets FIFO_OVR_IA and
            FIFO_OVR_LATCHED (the latter cleared when FIFO_STATUS2 is read).

Not modelled: the low-pass filters (the setting is kept, the output is the source as recorded),
temperature in the ST FIFO, timestamps, compression, the MPU DMP, auxiliary I2C, interrupts pins.

Time: a device samples at its configured output rate as the clock (machine.sim_clock unless given)
moves, or when a test calls step(n).  Sources are in imu_trace.py.
"""

import math

from machine import sim_clock

# ------------------------------------------------------------------ MPU-6050/6500 register map
MPU_SELF_TEST_X_GYRO = 0x00  # MPU-6500 gyro self-test OTP codes (0x00..0x02)
MPU_SELF_TEST_X = 0x0D  # MPU-6050: XA_TEST[4:2] | XG_TEST[4:0]; MPU-6500: accel OTP code
MPU_SELF_TEST_Y = 0x0E
MPU_SELF_TEST_Z = 0x0F
MPU_SELF_TEST_A = 0x10  # MPU-6050: XA_TEST[1:0] << 4 | YA << 2 | ZA
MPU_SMPLRT_DIV = 0x19
MPU_CONFIG = 0x1A  # [6] FIFO_MODE (6500) [5:3] EXT_SYNC_SET [2:0] DLPF_CFG
MPU_GYRO_CONFIG = 0x1B  # [7:5] XG/YG/ZG_ST [4:3] FS_SEL [1:0] FCHOICE_B (6500)
MPU_ACCEL_CONFIG = 0x1C  # [7:5] XA/YA/ZA_ST [4:3] AFS_SEL
MPU_ACCEL_CONFIG2 = 0x1D  # 6500: [3] ACCEL_FCHOICE_B [2:0] A_DLPF_CFG
MPU_FIFO_EN = 0x23  # [7] TEMP [6] XG [5] YG [4] ZG [3] ACCEL [2:0] slaves
MPU_INT_ENABLE = 0x38
MPU_INT_STATUS = 0x3A  # [4] FIFO_OFLOW_INT [0] DATA_RDY_INT; cleared by reading
MPU_ACCEL_XOUT_H = 0x3B  # 0x3B..0x40 accel, 0x41..0x42 temp, 0x43..0x48 gyro, big-endian
MPU_TEMP_OUT_H = 0x41
MPU_GYRO_XOUT_H = 0x43
MPU_SIGNAL_PATH_RESET = 0x68
MPU_USER_CTRL = 0x6A  # [6] FIFO_EN [2] FIFO_RESET [0] SIG_COND_RESET
MPU_PWR_MGMT_1 = 0x6B  # [7] DEVICE_RESET [6] SLEEP [2:0] CLKSEL; resets to 0x40
MPU_PWR_MGMT_2 = 0x6C
MPU_FIFO_COUNTH = 0x72
MPU_FIFO_COUNTL = 0x73
MPU_FIFO_R_W = 0x74
MPU_WHO_AM_I = 0x75

MPU6050_WHO_AM_I = 0x68
MPU6500_WHO_AM_I = 0x70

MPU_GYRO_LSB = (131.0, 65.5, 32.8, 16.4)  # LSB per deg/s at FS_SEL 0..3 (250..2000 dps)
MPU_ACCEL_LSB = (16384.0, 8192.0, 4096.0, 2048.0)  # LSB per g at AFS_SEL 0..3 (2..16 g)

# ------------------------------------------------------------- LSM6DSOX/ISM330DHCX register map
LSM_FIFO_CTRL1 = 0x07  # WTM[7:0]
LSM_FIFO_CTRL2 = 0x08  # [0] WTM8
LSM_FIFO_CTRL3 = 0x09  # [7:4] BDR_GY [3:0] BDR_XL
LSM_FIFO_CTRL4 = 0x0A  # [2:0] FIFO_MODE: 0 bypass, 1 FIFO, 6 continuous
LSM_INT1_CTRL = 0x0D
LSM_WHO_AM_I = 0x0F
LSM_CTRL1_XL = 0x10  # [7:4] ODR_XL [3:2] FS_XL [1] LPF2_XL_EN
LSM_CTRL2_G = 0x11  # [7:4] ODR_G [3:2] FS_G [1] FS_125 [0] FS_4000 (ISM330DHCX)
LSM_CTRL3_C = 0x12  # [7] BOOT [6] BDU [2] IF_INC [0] SW_RESET; resets to 0x04
LSM_CTRL4_C = 0x13  # [1] LPF1_SEL_G
LSM_CTRL5_C = 0x14  # [3:2] ST_G [1:0] ST_XL
LSM_CTRL6_C = 0x15  # [2:0] FTYPE
LSM_CTRL7_G = 0x16
LSM_CTRL8_XL = 0x17  # [7:5] HPCF_XL
LSM_CTRL9_XL = 0x18  # resets to 0xE0; [1] I3C_DISABLE (DSOX) / DEVICE_CONF (ISM330DHCX)
LSM_CTRL10_C = 0x19
LSM_STATUS_REG = 0x1E  # [2] TDA [1] GDA [0] XLDA
LSM_OUT_TEMP_L = 0x20
LSM_OUTX_L_G = 0x22  # 0x22..0x27 gyro, 0x28..0x2D accel, little-endian
LSM_OUTX_L_A = 0x28
LSM_FIFO_STATUS1 = 0x3A  # DIFF_FIFO[7:0]
LSM_FIFO_STATUS2 = 0x3B  # [7] WTM_IA [6] OVR_IA [5] FULL_IA [4] CNT_BDR [3] OVR_LATCHED [1:0]
LSM_FIFO_DATA_OUT_TAG = 0x78  # 0x79..0x7E data X_L..Z_H

LSM6DSOX_WHO_AM_I = 0x6C
ISM330DHCX_WHO_AM_I = 0x6B

LSM_TAG_GYRO = 0x01
LSM_TAG_ACCEL = 0x02

LSM_ODR_MHZ = (0, 12500, 26000, 52000, 104000, 208000, 416000, 833000, 1666000, 3332000,
               6664000)  # by ODR/BDR code 0..10 (codes 11+ are low-power-only rates: unsupported)
LSM_ACCEL_MG_PER_LSB = {0: 0.061, 2: 0.122, 3: 0.244, 1: 0.488}  # by FS_XL code: 2, 4, 8, 16 g
LSM_ACCEL_FS_G = {0: 2, 2: 4, 3: 8, 1: 16}
LSM_GYRO_MDPS_PER_LSB = {0: 8.75, 1: 17.5, 2: 35.0, 3: 70.0}  # by FS_G code: 250..2000 dps
LSM_GYRO_FS_DPS = {0: 250, 1: 500, 2: 1000, 3: 2000}


def _round(x):
    # Same rounding on CPython and MicroPython (round() differs on ties).
    return int(math.floor(x + 0.5))


def _sat16(v):
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return v


def _parity_bit(v):
    """The bit that makes v (7 significant bits above bit 0) have an even number of ones."""
    v &= 0xFE
    p = 0
    while v:
        p ^= v & 1
        v >>= 1
    return p


class RegisterDevice:
    """A bare 128-register I2C device with address auto-increment; answers WHO_AM_I."""

    def __init__(self, who_reg=None, who=None):
        self.regs = bytearray(128)
        self._who_reg = who_reg
        self._who = who
        self.ro_writes = 0
        self.power_cycles = 0
        self.reset_regs()

    def reset_regs(self):
        for i in range(128):
            self.regs[i] = 0
        if self._who_reg is not None:
            self.regs[self._who_reg] = self._who

    def power_cycle(self):
        self.power_cycles += 1
        self.reset_regs()

    def read_into(self, reg, buf):
        for i in range(len(buf)):
            buf[i] = self._read(reg)
            reg = self._next_addr(reg)

    def write(self, reg, data):
        for i in range(len(data)):
            self._write(reg, data[i])
            reg = self._next_addr(reg)

    def _read(self, reg):
        return self.regs[reg & 0x7F]

    def _write(self, reg, val):
        self.regs[reg & 0x7F] = val

    def _next_addr(self, reg):
        return (reg + 1) & 0x7F


class SimImu(RegisterDevice):
    """Common part of the simulated IMUs: clocking, the sample source and range conversion."""

    def __init__(self, source, who_reg, who, clock=None):
        self.source = source
        self._raw = [0, 0, 0, 0, 0, 0]
        self.samples = 0
        self.sensor_us = 0
        self.source_ended = False
        self.st_gain = 1.0  # self-test response relative to a healthy part (fault injection)
        self.overflows = 0
        self.underreads = 0
        self._acc = 0
        self.clock = sim_clock if clock is None else clock
        self._last_us = self.clock.us
        RegisterDevice.__init__(self, who_reg, who)
        self.clock.attach(self._on_time)

    def rate_mhz(self):
        return 0

    def _on_time(self, now_us):
        dt = now_us - self._last_us
        self._last_us = now_us
        rate = self.rate_mhz()
        if rate <= 0:
            self._acc = 0
            return
        self._acc += dt * rate
        while self._acc >= 1000000000:
            self._acc -= 1000000000
            self._sample()

    def step(self, n=1):
        """Produce n samples now (if the chip is sampling); returns how many were produced."""
        if self.rate_mhz() <= 0:
            return 0
        for _ in range(n):
            self._sample()
        return n

    def _sample(self):
        rate = self.rate_mhz()
        if not self.source.sample_at(self.sensor_us, self._raw):
            self.source_ended = True
        self.sensor_us += 1000000000 // rate
        self.samples += 1
        self._tick()

    def _tick(self):
        pass

    def _convert(self, raw, src_lsb, dst_lsb, offset_phys):
        # Physical value of the source sample (plus self-test stimulus) at this chip's scale.
        return _sat16(_round((raw / src_lsb + offset_phys) * dst_lsb))


# ------------------------------------------------------------------------------------ MPU sim


class Mpu6050Sim(SimImu):
    """MPU-6050 (variant "6050") or MPU-6500 (variant "6500") register map."""

    def __init__(self, source, variant="6050", clock=None, st_codes=None, temp_c=25.0):
        if variant not in ("6050", "6500"):
            raise ValueError("variant is '6050' or '6500'")
        self.variant = variant
        self.fifo_size = 1024 if variant == "6050" else 512
        self._fifo = bytearray(self.fifo_size)
        self._fhead = 0
        self._fcount = 0
        self._last_fifo_byte = 0
        self.temp_c = temp_c
        if st_codes is None:
            # Factory trim codes as a healthy part might carry: gyro xyz, accel xyz.
            st_codes = (13, 14, 15, 16, 17, 18) if variant == "6050" else (100, 110, 105, 120,
                                                                              125, 130)
        self.st_codes = tuple(st_codes)
        who = MPU6050_WHO_AM_I if variant == "6050" else MPU6500_WHO_AM_I
        SimImu.__init__(self, source, MPU_WHO_AM_I, who, clock)

    # -- register file
    def reset_regs(self):
        RegisterDevice.reset_regs(self)
        self.regs[MPU_PWR_MGMT_1] = 0x40
        self._write_trim()
        self._fhead = 0
        self._fcount = 0

    def _write_trim(self):
        c = self.st_codes
        r = self.regs
        if self.variant == "6050":
            for i in range(3):
                r[MPU_SELF_TEST_X + i] = ((c[3 + i] >> 2) & 0x07) << 5 | (c[i] & 0x1F)
            r[MPU_SELF_TEST_A] = (c[3] & 3) << 4 | (c[4] & 3) << 2 | (c[5] & 3)
        else:
            for i in range(3):
                r[MPU_SELF_TEST_X_GYRO + i] = c[i]
                r[MPU_SELF_TEST_X + i] = c[3 + i]

    def _read(self, reg):
        r = self.regs
        if reg == MPU_FIFO_R_W:
            return self._fifo_pop()
        if reg == MPU_INT_STATUS:
            v = r[reg]
            r[reg] = 0
            return v
        if reg == MPU_FIFO_COUNTH:
            return (self._fcount >> 8) & 0x1F
        if reg == MPU_FIFO_COUNTL:
            return self._fcount & 0xFF
        return r[reg & 0x7F]

    def _next_addr(self, reg):
        return reg if reg == MPU_FIFO_R_W else (reg + 1) & 0x7F

    def _write(self, reg, val):
        r = self.regs
        if reg == MPU_PWR_MGMT_1:
            if val & 0x80:
                self.reset_regs()
                return
            r[reg] = val
        elif reg == MPU_USER_CTRL:
            if val & 0x04:
                self._fhead = 0
                self._fcount = 0
            if val & 0x01:
                for i in range(MPU_ACCEL_XOUT_H, MPU_GYRO_XOUT_H + 6):
                    r[i] = 0
            r[reg] = val & 0xF8  # reset bits clear themselves
        elif reg == MPU_SIGNAL_PATH_RESET:
            for i in range(MPU_ACCEL_XOUT_H, MPU_GYRO_XOUT_H + 6):
                r[i] = 0
        elif reg == MPU_FIFO_R_W:
            self._fifo_push(val)
        elif (reg == MPU_WHO_AM_I or reg == MPU_INT_STATUS or reg == MPU_FIFO_COUNTH
              or reg == MPU_FIFO_COUNTL or MPU_ACCEL_XOUT_H <= reg < MPU_GYRO_XOUT_H + 6):
            self.ro_writes += 1
        else:
            r[reg & 0x7F] = val

    # -- FIFO
    def fifo_count(self):
        return self._fcount

    def _fifo_push(self, b):
        # True when data was lost (overwritten or dropped).
        if self._fcount == self.fifo_size:
            if self.variant == "6500" and self.regs[MPU_CONFIG] & 0x40:
                return True  # FIFO_MODE=1: further writes are dropped
            self._fhead = (self._fhead + 1) % self.fifo_size  # the oldest byte is overwritten
            self._fcount -= 1
            ovf = True
        else:
            ovf = False
        self._fifo[(self._fhead + self._fcount) % self.fifo_size] = b
        self._fcount += 1
        return ovf

    def _fifo_pop(self):
        if self._fcount == 0:
            self.underreads += 1
            return self._last_fifo_byte
        b = self._fifo[self._fhead]
        self._fhead = (self._fhead + 1) % self.fifo_size
        self._fcount -= 1
        self._last_fifo_byte = b
        return b

    # -- sampling
    def rate_mhz(self):
        r = self.regs
        if r[MPU_PWR_MGMT_1] & 0x40:
            return 0
        dlpf = r[MPU_CONFIG] & 0x07
        internal = 8000 if dlpf == 0 or dlpf == 7 else 1000
        if self.variant == "6500" and r[MPU_GYRO_CONFIG] & 0x03:
            internal = 32000
        return internal * 1000 // (1 + r[MPU_SMPLRT_DIV])

    def factory_trim(self):
        """Self-test response of a healthy part, as (gx, gy, gz) deg/s and (ax, ay, az) g."""
        c = self.st_codes
        if self.variant == "6050":
            g = []
            a = []
            for i in range(3):
                ft = 25 * 131 * 1.046 ** (c[i] - 1) if c[i] else 0.0
                g.append((-ft if i == 1 else ft) / 131.0)
                fa = 4096 * 0.34 * (0.92 / 0.34) ** ((c[3 + i] - 1) / 30) if c[3 + i] else 0.0
                a.append(fa / 4096.0)
            return g, a
        g = [(2620 * 1.01 ** (c[i] - 1) if c[i] else 0.0) / 131.0 for i in range(3)]
        a = [(2620 * 1.01 ** (c[3 + i] - 1) if c[3 + i] else 0.0) / 16384.0 for i in range(3)]
        return g, a

    def _tick(self):
        r = self.regs
        src = self.source
        raw = self._raw
        gcfg = r[MPU_GYRO_CONFIG]
        acfg = r[MPU_ACCEL_CONFIG]
        glsb = MPU_GYRO_LSB[(gcfg >> 3) & 3]
        alsb = MPU_ACCEL_LSB[(acfg >> 3) & 3]
        st_g = st_a = None
        if (gcfg | acfg) & 0xE0:
            st_g, st_a = self.factory_trim()
        for i in range(3):
            off = st_g[i] * self.st_gain if gcfg & (0x80 >> i) else 0.0
            v = self._convert(raw[i], src.gyro_lsb_per_dps, glsb, off)
            r[MPU_GYRO_XOUT_H + 2 * i] = (v >> 8) & 0xFF
            r[MPU_GYRO_XOUT_H + 2 * i + 1] = v & 0xFF
            off = st_a[i] * self.st_gain if acfg & (0x80 >> i) else 0.0
            v = self._convert(raw[3 + i], src.accel_lsb_per_g, alsb, off)
            r[MPU_ACCEL_XOUT_H + 2 * i] = (v >> 8) & 0xFF
            r[MPU_ACCEL_XOUT_H + 2 * i + 1] = v & 0xFF
        if self.variant == "6050":
            t = _round((self.temp_c - 36.53) * 340)
        else:
            t = _round((self.temp_c - 21.0) * 333.87)
        t = _sat16(t)
        r[MPU_TEMP_OUT_H] = (t >> 8) & 0xFF
        r[MPU_TEMP_OUT_H + 1] = t & 0xFF
        r[MPU_INT_STATUS] |= 0x01
        if r[MPU_USER_CTRL] & 0x40:
            en = r[MPU_FIFO_EN]
            ovf = False
            if en & 0x08:
                for i in range(6):
                    ovf = self._fifo_push(r[MPU_ACCEL_XOUT_H + i]) or ovf
            if en & 0x80:
                for i in range(2):
                    ovf = self._fifo_push(r[MPU_TEMP_OUT_H + i]) or ovf
            for axis in range(3):
                if en & (0x40 >> axis):
                    for i in range(2):
                        ovf = self._fifo_push(r[MPU_GYRO_XOUT_H + 2 * axis + i]) or ovf
            if ovf:
                r[MPU_INT_STATUS] |= 0x10
                self.overflows += 1


# ------------------------------------------------------------------------------------ LSM sim


class Lsm6dsoxSim(SimImu):
    """LSM6DSOX (variant "lsm6dsox", WHO_AM_I 0x6C) or ISM330DHCX ("ism330dhcx", 0x6B)."""

    FIFO_WORDS = 512

    def __init__(self, source, variant="lsm6dsox", clock=None, temp_c=25.0, st_accel_g=0.6,
                 st_gyro_fraction=0.18, accel_first=False):
        if variant not in ("lsm6dsox", "ism330dhcx"):
            raise ValueError("variant is 'lsm6dsox' or 'ism330dhcx'")
        self.variant = variant
        self.temp_c = temp_c
        self.st_accel_g = st_accel_g  # self-test stimulus; the datasheet limit is 50..1700 mg
        self.st_gyro_fraction = st_gyro_fraction  # gyro stimulus as a fraction of full scale
        self.accel_first = accel_first  # order of the two words of one time slot
        self._fifo = bytearray(7 * self.FIFO_WORDS)
        self._whead = 0
        self._wcount = 0
        self._word_pos = 0
        self._tag_cnt = 0
        self._ticks = 0
        self._xl_n = 0
        self._g_n = 0
        self._ovr = False
        self._ovr_latched = False
        self.words_written = 0
        self.words_lost = 0
        who = LSM6DSOX_WHO_AM_I if variant == "lsm6dsox" else ISM330DHCX_WHO_AM_I
        SimImu.__init__(self, source, LSM_WHO_AM_I, who, clock)

    def reset_regs(self):
        RegisterDevice.reset_regs(self)
        r = self.regs
        r[0x02] = 0x3F  # PIN_CTRL
        r[LSM_CTRL3_C] = 0x04
        r[LSM_CTRL9_XL] = 0xE0
        self._fifo_clear()

    def _fifo_clear(self):
        self._whead = 0
        self._wcount = 0
        self._word_pos = 0
        self._ovr = False
        self._ovr_latched = False

    # -- configuration as the chip sees it
    def accel_code(self):
        c = self.regs[LSM_CTRL1_XL] >> 4
        return c if c <= 10 else 0

    def gyro_code(self):
        c = self.regs[LSM_CTRL2_G] >> 4
        return c if c <= 10 else 0

    def rate_mhz(self):
        return LSM_ODR_MHZ[max(self.accel_code(), self.gyro_code())]

    def accel_lsb_per_g(self):
        return 1000.0 / LSM_ACCEL_MG_PER_LSB[(self.regs[LSM_CTRL1_XL] >> 2) & 3]

    def accel_fs_g(self):
        return LSM_ACCEL_FS_G[(self.regs[LSM_CTRL1_XL] >> 2) & 3]

    def gyro_fs_dps(self):
        g = self.regs[LSM_CTRL2_G]
        if self.variant == "ism330dhcx" and g & 0x01:
            return 4000
        if g & 0x02:
            return 125
        return LSM_GYRO_FS_DPS[(g >> 2) & 3]

    def gyro_lsb_per_dps(self):
        return 1000.0 / (8.75 * self.gyro_fs_dps() / 250)

    # -- register file
    def _read(self, reg):
        r = self.regs
        if LSM_FIFO_DATA_OUT_TAG <= reg <= LSM_FIFO_DATA_OUT_TAG + 6:
            return self._fifo_read_byte(reg - LSM_FIFO_DATA_OUT_TAG)
        if reg == LSM_FIFO_STATUS1:
            return self._wcount & 0xFF
        if reg == LSM_FIFO_STATUS2:
            return self._status2(True)
        if LSM_OUTX_L_G <= reg < LSM_OUTX_L_G + 6:
            r[LSM_STATUS_REG] &= ~0x02
        elif LSM_OUTX_L_A <= reg < LSM_OUTX_L_A + 6:
            r[LSM_STATUS_REG] &= ~0x01
        return r[reg & 0x7F]

    def _next_addr(self, reg):
        if not self.regs[LSM_CTRL3_C] & 0x04:
            return reg  # IF_INC cleared: no auto-increment
        if reg == LSM_FIFO_DATA_OUT_TAG + 6:
            return LSM_FIFO_DATA_OUT_TAG  # FIFO output wraps so words can be burst-read
        return (reg + 1) & 0x7F

    def _write(self, reg, val):
        r = self.regs
        if reg == LSM_CTRL3_C:
            if val & 0x01:
                self.reset_regs()
                return
            r[reg] = val & 0x7E  # BOOT and SW_RESET clear themselves
        elif reg == LSM_FIFO_CTRL4:
            r[reg] = val
            if val & 0x07 == 0:
                self._fifo_clear()  # bypass mode empties the FIFO
        elif (reg == LSM_WHO_AM_I or 0x1A <= reg <= 0x2D or reg == LSM_FIFO_STATUS1
              or reg == LSM_FIFO_STATUS2 or reg >= LSM_FIFO_DATA_OUT_TAG):
            self.ro_writes += 1
        else:
            r[reg & 0x7F] = val

    # -- FIFO
    def fifo_words(self):
        return self._wcount

    def fifo_mode(self):
        return self.regs[LSM_FIFO_CTRL4] & 0x07

    def _status2(self, clear):
        r = self.regs
        wtm = r[LSM_FIFO_CTRL1] | (r[LSM_FIFO_CTRL2] & 0x01) << 8
        v = (self._wcount >> 8) & 0x03
        if wtm and self._wcount >= wtm:
            v |= 0x80
        if self._ovr:
            v |= 0x40
        if self._wcount >= self.FIFO_WORDS - 1:
            v |= 0x20
        if self._ovr_latched:
            v |= 0x08
            if clear:
                self._ovr_latched = False
        return v

    def _fifo_read_byte(self, pos):
        if self._wcount == 0:
            if pos == 0:
                self.underreads += 1
            return 0
        b = self._fifo[7 * self._whead + pos]
        if pos == 6:
            self._whead = (self._whead + 1) % self.FIFO_WORDS
            self._wcount -= 1
            self._ovr = False
        return b

    def _fifo_put(self, tag, base):
        mode = self.fifo_mode()
        if mode != 1 and mode != 6:
            return  # bypass (and trigger modes, not modelled): nothing is stored
        if self._wcount == self.FIFO_WORDS:
            if mode == 1:
                self.words_lost += 1  # FIFO mode stops when full
                return
            self._whead = (self._whead + 1) % self.FIFO_WORDS  # continuous: oldest word goes
            self._wcount -= 1
            self.words_lost += 1
            if not self._ovr:
                self.overflows += 1
            self._ovr = True
            self._ovr_latched = True
        t = (tag << 3) | (self._tag_cnt << 1)
        t |= _parity_bit(t)
        o = 7 * ((self._whead + self._wcount) % self.FIFO_WORDS)
        f = self._fifo
        f[o] = t
        r = self.regs
        for i in range(6):
            f[o + 1 + i] = r[base + i]
        self._wcount += 1
        self.words_written += 1

    # -- sampling
    def _tick(self):
        r = self.regs
        src = self.source
        raw = self._raw
        top = max(self.accel_code(), self.gyro_code())
        xl = self.accel_code()
        g = self.gyro_code()
        ctrl5 = r[LSM_CTRL5_C]
        self._ticks += 1
        xl_new = g_new = False
        if xl and self._ticks % (1 << (top - xl)) == 0:
            st = ctrl5 & 0x03
            off = 0.0
            if st == 1:
                off = self.st_accel_g * self.st_gain
            elif st == 2:
                off = -self.st_accel_g * self.st_gain
            lsb = self.accel_lsb_per_g()
            for i in range(3):
                v = self._convert(raw[3 + i], src.accel_lsb_per_g, lsb, off)
                r[LSM_OUTX_L_A + 2 * i] = v & 0xFF
                r[LSM_OUTX_L_A + 2 * i + 1] = (v >> 8) & 0xFF
            r[LSM_STATUS_REG] |= 0x01
            xl_new = True
            self._xl_n += 1
        if g and self._ticks % (1 << (top - g)) == 0:
            st = (ctrl5 >> 2) & 0x03
            off = 0.0
            if st == 1:
                off = self.st_gyro_fraction * self.gyro_fs_dps() * self.st_gain
            elif st == 3:
                off = -self.st_gyro_fraction * self.gyro_fs_dps() * self.st_gain
            lsb = self.gyro_lsb_per_dps()
            for i in range(3):
                v = self._convert(raw[i], src.gyro_lsb_per_dps, lsb, off)
                r[LSM_OUTX_L_G + 2 * i] = v & 0xFF
                r[LSM_OUTX_L_G + 2 * i + 1] = (v >> 8) & 0xFF
            r[LSM_STATUS_REG] |= 0x02
            g_new = True
            self._g_n += 1
        t = _sat16(_round((self.temp_c - 25.0) * 256))
        r[LSM_OUT_TEMP_L] = t & 0xFF
        r[LSM_OUT_TEMP_L + 1] = (t >> 8) & 0xFF
        r[LSM_STATUS_REG] |= 0x04
        # Batching: a sensor's samples go to the FIFO at its batch data rate (BDR), never faster
        # than its output rate.
        bdr_g = r[LSM_FIFO_CTRL3] >> 4
        bdr_xl = r[LSM_FIFO_CTRL3] & 0x0F
        put_g = g_new and 0 < bdr_g <= 10 and self._g_n % (1 << max(0, g - bdr_g)) == 0
        put_xl = xl_new and 0 < bdr_xl <= 10 and self._xl_n % (1 << max(0, xl - bdr_xl)) == 0
        if not (put_g or put_xl):
            return
        if self.accel_first:
            if put_xl:
                self._fifo_put(LSM_TAG_ACCEL, LSM_OUTX_L_A)
            if put_g:
                self._fifo_put(LSM_TAG_GYRO, LSM_OUTX_L_G)
        else:
            if put_g:
                self._fifo_put(LSM_TAG_GYRO, LSM_OUTX_L_G)
            if put_xl:
                self._fifo_put(LSM_TAG_ACCEL, LSM_OUTX_L_A)
        self._tag_cnt = (self._tag_cnt + 1) & 0x03

    def corrupt_word(self, index, xor=0x80):
        """Flip bits of the tag of the index-th unread FIFO word (a bit error on the wire)."""
        if index >= self._wcount:
            raise IndexError("FIFO holds %d words" % self._wcount)
        self._fifo[7 * ((self._whead + index) % self.FIFO_WORDS)] ^= xor

    def fill(self, words_free=0):
        """Step until the FIFO holds FIFO_WORDS - words_free words (needs FIFO and both sensors
        batching); returns the number of samples produced."""
        n = 0
        while self._wcount < self.FIFO_WORDS - words_free and n < 4 * self.FIFO_WORDS:
            if not self.step(1):
                break
            n += 1
        return n
