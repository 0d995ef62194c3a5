"""Neckline wearable entry point.

On a board (copied next to wearable/ with mpremote): boot the app and run it forever.
On the MicroPython unix port (firmware/sim on MICROPYPATH): a virtual device with simulated
hardware; `micropython firmware/main.py --help` lists its options (firmware/sim/vdevice.py).
"""

import sys

if sys.platform in ("linux", "darwin"):
    import vdevice

    vdevice.main()
else:
    from wearable.app import App

    try:
        App().run()
    except Exception as e:  # a boot bug: report it and stay at the REPL, never a reset loop
        print("neckline: the app stopped:")
        sys.print_exception(e)
