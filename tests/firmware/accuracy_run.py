"""Run the firmware's orientation filter and posture code over a raw register file.

    <interpreter> accuracy_run.py RAW OUT SAMPLES CHECKPOINT CAL_START RATE GYRO_LSB ACCEL_LSB
                                  REMAP BATCH CAL_WAIT_S TAU_MOTION_S

Runs under MicroPython and CPython alike and does what the board's main loop does: read a FIFO
batch of BATCH samples (gx, gy, gz, ax, ay, az int16, little-endian, chip axes), apply the
mounting's axis remap with `remap_batch`, feed `Orient.update_batch`, then `Posture.update`.
Calibration starts at the first batch boundary at or after sample CAL_START, with a grace of
CAL_WAIT_S seconds for motion. TAU_MOTION_S is the filter's accelerometer time constant while
moving (an Orient constructor parameter).

OUT gets three int16 per batch: flexion and lateral bend in centidegrees (NO_VALUE before a
neutral exists) and the sample flags. stdout gets one JSON object of integers: the calibration
result and the readout at which it came, the neutral frame, the filter's state after SAMPLES
samples and, as "checkpoint", after CHECKPOINT samples (so a short run can be compared with
the same span of a long one).
"""

import json
import sys
from array import array

from wearable.orient import Orient, remap_batch, remap_table
from wearable.posture import NO_RESULT, Posture

FLUSH = 1024  # batches per write to OUT


def state(f, p):
    return {"orient": list(f.s), "neutral": list(p.nf), "calibrated": p.calibrated,
            "flexion_cd": p.flexion_cd, "lateral_cd": p.lateral_cd}


def run(argv):
    raw_path = argv[0]
    out_path = argv[1]
    samples = int(argv[2])
    checkpoint = int(argv[3])
    cal_start = int(argv[4])
    rate = float(argv[5])
    gyro_lsb = float(argv[6])
    accel_lsb = float(argv[7])
    table = remap_table(argv[8])
    batch = int(argv[9])
    cal_wait = float(argv[10])
    tau_motion = float(argv[11])

    f = Orient(rate, gyro_lsb, accel_lsb, tau_motion_s=tau_motion)
    p = Posture(f)
    buf = array("h", [0] * (6 * batch))
    out = array("h", [0] * (3 * FLUSH))
    view = memoryview(out)
    summary = {"cal_result": NO_RESULT, "cal_readout": -1, "checkpoint": None}
    done = 0
    readout = 0
    k = 0
    started = False
    with open(raw_path, "rb") as src, open(out_path, "wb") as dst:
        while done + batch <= samples:
            if not started and done >= cal_start:
                p.start_calibration(cal_wait)
                started = True
            if src.readinto(buf) != 12 * batch:
                raise ValueError("raw file ends early")
            remap_batch(buf, batch, table)
            f.update_batch(buf, batch)
            done += batch
            p.update()
            r = p.take_cal_result()
            if r != NO_RESULT:
                summary["cal_result"] = r
                summary["cal_readout"] = readout
            out[3 * k] = p.flexion_cd
            out[3 * k + 1] = p.lateral_cd
            out[3 * k + 2] = p.flags
            k += 1
            readout += 1
            if k == FLUSH:
                dst.write(out)
                k = 0
            if done == checkpoint:
                summary["checkpoint"] = state(f, p)
        if k:
            dst.write(view[: 3 * k])
    summary["samples"] = done
    summary["readouts"] = readout
    summary["cal_pitch_cd"] = p.cal_pitch_cd
    summary["cal_roll_cd"] = p.cal_roll_cd
    summary["rejected"] = f.rejected()
    summary["end"] = state(f, p)
    return summary


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:])))
