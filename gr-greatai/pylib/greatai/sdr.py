"""SDR front-end settings: device limits and validation (no GNU Radio, no drivers).

Used by ``greatai.sdr_source`` before any driver is touched, so a bad frequency or rate
is a clear error at construction.
"""
from __future__ import annotations

DEVICES = ("sim", "pluto", "usrp", "file")

# Real limits.  Pluto: AD9363 tuned 70 MHz-6 GHz (the common firmware unlock), 65.1 kS/s
# (with the FIR decimator) to 61.44 MS/s.  USRP: the B2xx family (AD9361).
LIMITS = {
    "pluto": {"freq": (70e6, 6e9), "rate": (65.1e3, 61.44e6), "gain": (-3.0, 71.0), "bandwidth": (200e3, 56e6)},
    "usrp": {"freq": (70e6, 6e9), "rate": (62.5e3, 61.44e6), "gain": (0.0, 76.0), "bandwidth": (200e3, 56e6)},
}
GAIN_MODES = {"pluto": ("manual", "slow_attack", "fast_attack", "hybrid"), "usrp": ("manual", "agc"),
              "sim": ("manual",), "file": ("manual",)}
DEFAULT_ADDRESS = {"pluto": "ip:192.168.2.1", "usrp": "type=b200", "sim": "", "file": ""}


def _fmt(v):
    for unit, div in (("GHz", 1e9), ("MHz", 1e6), ("kHz", 1e3)):
        if abs(v) >= div:
            return f"{v / div:g} {unit}"
    return f"{v:g}"


NAMES = {"pluto": "ADALM-Pluto", "usrp": "USRP B2xx"}
LABELS = {"freq": "centre frequency", "rate": "sample rate", "gain": "gain", "bandwidth": "bandwidth"}


def check_value(device: str, what: str, value: float):
    """Raise ValueError if ``value`` of ``what`` (freq, rate, gain, bandwidth) is outside
    the device's range; devices without hardware limits (sim, file) accept anything."""
    lim = LIMITS.get(device)
    if not lim:
        return
    lo, hi = lim[what]
    if not lo <= value <= hi:
        show = (lambda v: f"{v:g} dB") if what == "gain" else _fmt
        raise ValueError(f"{NAMES[device]} {LABELS[what]} {show(value)} is out of range ({show(lo)} to {show(hi)})")


def check(device: str, freq: float, samp_rate: float, gain: float, gain_mode: str, bandwidth: float = 0.0,
          address: str = ""):
    """Raise ValueError naming the parameter, the value and the device's range."""
    if device not in DEVICES:
        raise ValueError(f"unknown device type {device!r}; choose one of {', '.join(DEVICES)}")
    if not samp_rate > 0:
        raise ValueError(f"sample rate must be > 0, got {samp_rate}")
    if gain_mode not in GAIN_MODES[device]:
        raise ValueError(f"gain mode {gain_mode!r} is not valid for {device}; choose one of "
                         f"{', '.join(GAIN_MODES[device])}")
    if device == "file" and not str(address).strip():
        raise ValueError("device 'file' needs the recording's path in 'address'")
    check_value(device, "freq", freq)
    check_value(device, "rate", samp_rate)
    if gain_mode == "manual":
        check_value(device, "gain", gain)
    if bandwidth:                       # 0: follow the sample rate
        check_value(device, "bandwidth", bandwidth)
