"""``greatai capture``: record labelled SigMF from an ADALM-Pluto (pyadi-iio), a USRP (UHD's
Python API) or the simulated radio, for calibration and retraining (no GNU Radio).

A reader thread pulls buffers from the driver into a bounded queue; the main thread
appends them to ``OUT.sigmf-data.part`` and shows a progress bar.  When the capture ends
(its length reached, Ctrl-C, SIGTERM or a driver error) the part file is cut to whole
samples, fsynced and renamed to ``OUT.sigmf-data``, then ``OUT.sigmf-meta`` is written
atomically with the samples actually recorded: an interrupted capture leaves a valid,
shorter recording.  A hard kill leaves only the part file, and any earlier recording
under that name untouched.
"""
from __future__ import annotations

import os
import queue
import signal
import threading
import time
from pathlib import Path

import numpy as np

from . import sdr

PLUTO_SCALE = 2.0 ** 11          # pyadi-iio returns 12-bit ADC codes as complex numbers


class CaptureError(RuntimeError):
    """The device could not be opened or configured (the message names what was tried)."""


# ---------------------------------------------------------------- drivers (the test boundary)
def open_pluto(uri):
    try:
        import adi
    except ImportError as e:
        raise CaptureError(f"pyadi-iio is not installed ({e}); ./greatai.sh sets it up") from None
    try:
        return adi.Pluto(uri)
    except Exception as e:                 # libiio raises a variety of OSErrors / ValueErrors
        raise CaptureError(f"no ADALM-Pluto found at URI {uri!r}: {e}") from None


def open_usrp(args):
    try:
        import uhd
    except ImportError as e:
        raise CaptureError(f"UHD's Python API is not installed ({e}); ./greatai.sh installs python3-uhd") from None
    try:
        return uhd.usrp.MultiUSRP(args)
    except Exception as e:
        raise CaptureError(f"no USRP found with device args {args!r}: {e}") from None


DRIVERS = {"pluto": open_pluto, "usrp": open_usrp}


class PlutoReader:
    def __init__(self, dev, freq, rate, gain, gain_mode, bandwidth, buffer):
        self.dev = dev
        dev.sample_rate = int(rate)
        dev.rx_lo = int(freq)
        dev.rx_rf_bandwidth = int(bandwidth or rate)
        dev.gain_control_mode_chan0 = gain_mode
        if gain_mode == "manual":
            dev.rx_hardwaregain_chan0 = float(gain)
        dev.rx_buffer_size = int(buffer)
        self.overflows = None              # libiio does not report Pluto overflows

    def read(self):
        return (np.asarray(self.dev.rx(), np.complex64) / PLUTO_SCALE).astype(np.complex64)

    def close(self):
        destroy = getattr(self.dev, "rx_destroy_buffer", None)
        if destroy:
            destroy()


class USRPReader:
    def __init__(self, dev, freq, rate, gain, gain_mode, bandwidth, buffer):
        import uhd
        self.uhd, self.dev = uhd, dev
        dev.set_rx_rate(float(rate), 0)
        dev.set_rx_freq(uhd.types.TuneRequest(float(freq)), 0)
        if gain_mode == "agc":
            dev.set_rx_agc(True, 0)
        else:
            dev.set_rx_gain(float(gain), 0)
        dev.set_rx_bandwidth(float(bandwidth or rate), 0)
        st = uhd.usrp.StreamArgs("fc32", "sc16")
        st.channels = [0]
        self.stream = dev.get_rx_stream(st)
        self.md = uhd.types.RXMetadata()
        self.buf = np.zeros((1, int(buffer)), np.complex64)
        cmd = uhd.types.StreamCMD(uhd.types.StreamMode.start_cont)
        cmd.stream_now = True
        self.stream.issue_stream_cmd(cmd)
        self.overflows = 0

    def read(self):
        n = self.stream.recv(self.buf, self.md, 1.0)
        if self.md.error_code == self.uhd.types.RXMetadataErrorCode.overflow:
            self.overflows += 1
        elif self.md.error_code != self.uhd.types.RXMetadataErrorCode.none:
            raise CaptureError(f"USRP receive error: {self.md.strerror()}")
        return self.buf[0, :n].copy()

    def close(self):
        self.stream.issue_stream_cmd(self.uhd.types.StreamCMD(self.uhd.types.StreamMode.stop_cont))


class SimReader:
    """The simulated radio, paced to its sample rate like a real one."""

    def __init__(self, schedule, rate, buffer, seed=0):
        from . import sim
        self.st = sim.StreamSimulator(schedule, rate, (10.0, 20.0), seed=seed)
        self.n, self.rate = int(buffer), float(rate)
        self.overflows = None
        self._t0, self._sent = None, 0

    def read(self):
        if self._t0 is None:
            self._t0 = time.monotonic()
        wait = self._t0 + self._sent / self.rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._sent += self.n
        return self.st.read(self.n)[0]

    def close(self):
        pass


def open_reader(device, address, freq, rate, gain=30.0, gain_mode="manual", bandwidth=0.0, buffer=65536):
    """Check the settings against the device's limits, open it and configure it."""
    sdr.check(device, freq, rate, gain, gain_mode, bandwidth, address)
    if device == "sim":
        return SimReader(address or "QPSK:1", rate, buffer)
    if device == "file":
        raise ValueError("device 'file' is a recording already: nothing to capture")
    dev = DRIVERS[device](address or sdr.DEFAULT_ADDRESS[device])
    cls = PlutoReader if device == "pluto" else USRPReader
    try:
        return cls(dev, freq, rate, gain, gain_mode, bandwidth, buffer)
    except CaptureError:
        raise
    except Exception as e:
        raise CaptureError(f"configuring the {sdr.NAMES[device]} at {address!r} failed: {e}") from None


# ---------------------------------------------------------------- recording
def _write_samples(f, x) -> int:
    """Write complex64 samples to an unbuffered file, all or raise (partial writes are
    resumed, so on an error ``f.tell()`` says exactly what reached the file)."""
    view = memoryview(np.ascontiguousarray(x, np.complex64).view(np.uint8))
    while len(view):
        k = f.write(view)
        if not k:
            raise OSError(28, "no space left on device")
        view = view[k:]
    return len(x)


def _write_meta_making_room(base, data_p, rate, ann, description, extra, freq):
    """The metadata of a finished recording, cutting the data to make room on a full disk."""
    from .recording import write_making_room, write_sigmf_meta

    def cut(keep, e):
        for a in ann:
            a["core:sample_count"] = min(a["core:sample_count"], keep)
        extra["greatai:ended_early"] = f"error: {e.strerror or e} (cut to {keep} samples for the metadata)"
    try:
        return write_making_room(lambda: write_sigmf_meta(base, data_p, rate, ann, description, extra, freq=freq),
                                 data_p, cut)
    except OSError as e:
        raise CaptureError(f"cannot write the metadata of {data_p.name} ({e.strerror or e})") from None


def capture(reader, out, rate, seconds, freq=0.0, annotation=None, description="", progress=True,
            stop_event=None, queue_buffers=64):
    """Record ``seconds`` of IQ from ``reader`` into SigMF ``out``; returns (meta path, samples).

    annotation: extra fields for one annotation over the whole recording (core:label,
    greatai:beam, greatai:snr_db ...).  Ends early, still valid, on Ctrl-C/SIGTERM or
    ``stop_event``."""
    from tqdm import tqdm
    base = Path(out)
    if base.suffix in (".sigmf-meta", ".sigmf-data"):
        base = base.with_suffix("")
    data_p = Path(str(base) + ".sigmf-data")
    part = Path(str(data_p) + ".part")
    want = int(round(seconds * rate))
    stop = stop_event or threading.Event()
    q = queue.Queue(maxsize=queue_buffers)
    err = []

    def read_loop():
        try:
            got = 0
            while got < want and not stop.is_set():
                x = reader.read()
                got += len(x)
                q.put(x)
        except Exception as e:            # handed to the writer, which ends the recording cleanly
            err.append(e)
        finally:
            q.put(None)

    old = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if old is not None:
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
    t = threading.Thread(target=read_loop, name="greatai-capture", daemon=True)
    n = 0
    t0 = time.monotonic()
    interrupted = False
    bar = tqdm(total=want, unit="S", unit_scale=True, desc=f"capture {data_p.name}", disable=not progress,
               mininterval=0.5)
    try:
        with open(part, "wb", buffering=0) as f:
            t.start()
            try:
                while True:
                    x = q.get()
                    if x is None:
                        break
                    x = x[:want - n]
                    n += _write_samples(f, x)
                    bar.update(len(x))
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
            except OSError as e:          # disk full, file size limit ...: keep what is written
                n = f.tell() // 8
                f.truncate(n * 8)
                err.append(CaptureError(f"cannot write {data_p.name} ({e.strerror or e}): the recording ends "
                                        f"after {n} samples"))
                stop.set()
            os.fsync(f.fileno())
    finally:
        bar.close()
        stop.set()
        reader.close()
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    os.replace(part, data_p)
    ann = []
    if annotation and n:
        ann = [dict({"core:sample_start": 0, "core:sample_count": n}, **annotation)]
    extra = {"greatai:capture_seconds": round(time.monotonic() - t0, 3), "greatai:requested_samples": want}
    if getattr(reader, "overflows", None) is not None:
        extra["greatai:overflows"] = int(reader.overflows)
    if n < want:
        extra["greatai:ended_early"] = ("interrupted" if interrupted or stop_event is not None and stop.is_set()
                                        else f"error: {err[0]}" if err else "stopped")
    meta = _write_meta_making_room(base, data_p, rate, ann, description, extra, freq)
    n = min(n, os.path.getsize(data_p) // 8)
    if err and not n:
        raise CaptureError(f"capture failed before any sample: {err[0]}")
    return meta, n, err[0] if err else None
