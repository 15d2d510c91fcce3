"""The AMC model on signals it was not trained on: made by GNU Radio's own modulators
(``digital.generic_mod`` with GNU Radio's constellations, ``digital.gfsk_mod``,
``analog.cpfsk_bc``, ``analog.frequency_modulator_fc``) and passed through GNU Radio's own
channel blocks (``channels.channel_model``, ``dynamic_channel_model``, ``iqbal_gen``,
``phase_noise_gen``, ``distortion_3_gen``, ``quantizer``, ``filter.mmse_resampler_cc``),
as a user's flowgraph would make them.  None of the training simulator's code
(``greatai.sim``) makes these signals; only the class names are shared.

Each (class, impairment, segment) is one flowgraph: random bits -> modulator -> the
impairment's blocks -> ``channel_model`` (carrier offset, phase, the impairment's taps and
clock) -> sink.  Each SNR then adds GNU Radio's Gaussian noise (``analog.noise_source_c``)
at that SNR per sample against the segment's measured power, and the receiver-side
impairments (PA, gain steps, ADC) apply.  Frames start 4096 samples in (past filter
transients), 1024 samples each.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

FRAME = 1024
LEAD = 4096
SEGMENTS = 4                         # segments (sps, roll-off, offsets) per class, impairment and SNR

# ---- impairments: (description, transmitter/channel side, receiver side) --------------------------
IMPAIRMENTS = {
    "clean": "carrier offset up to 1 % of fs, random phase, integer samples per symbol",
    "multipath_short": "static Rayleigh multipath, 3-8 taps, exponential power delay profile",
    "multipath_long": "static Rayleigh multipath, 10-100 taps (delay spread 10-100 samples: several symbols)",
    "dynamic": "channels.dynamic_channel_model: Rayleigh fading (Doppler 1e-5 fs), 3-path delays, SRO and CFO drift",
    "clock": "non-integer samples per symbol (mmse_resampler_cc, ratio 0.8-1.25) and a 100 ppm clock offset",
    "iq_imbalance": "channels.iqbal_gen: 0.5-2 dB gain and 2-10 degree phase imbalance",
    "phase_noise": "channels.phase_noise_gen: noise magnitude 0.05-0.3, alpha 0.1",
    "pa": "channels.distortion_3_gen: third-order PA compression, beta 0.05-0.2 at unit power",
    "gain_step": "a gain step of +-20 dB at a random point inside each frame",
    "adc": "8-bit ADC: analog.rail_ff clipping at 3 sigma per rail, then channels.quantizer(8)",
}


def _bits(rng, n):
    from gnuradio import blocks
    return blocks.vector_source_b(rng.integers(0, 256, n, dtype=np.uint8).tolist(), False)


def _message(tb, rng, n, bw):
    """A random message of unit power band-limited to ``bw`` (fraction of fs): GNU Radio's
    Gaussian noise through a low-pass FIR."""
    from gnuradio import analog, filter
    from gnuradio.filter import firdes
    src = analog.noise_source_f(analog.GR_GAUSSIAN, 1.0 / np.sqrt(2 * bw), int(rng.integers(1, 2**30)))
    lp = filter.fir_filter_fff(1, firdes.low_pass(1.0, 1.0, bw, bw / 2))
    tb.connect(src, lp)
    return lp


def _modulator(tb, cls, rng, n):
    """The transmitter of a class: a block whose output is complex baseband (unit-ish power)."""
    from gnuradio import analog, blocks, digital
    sps = int(rng.integers(4, 17))
    if cls in ("BPSK", "QPSK", "8PSK", "QAM16", "QAM64", "PAM4"):
        const = {"BPSK": lambda: digital.constellation_bpsk(), "QPSK": lambda: digital.constellation_qpsk(),
                 "8PSK": lambda: digital.constellation_8psk(),
                 "QAM16": lambda: digital.qam.qam_constellation(16, differential=False),
                 "QAM64": lambda: digital.qam.qam_constellation(64, differential=False),
                 "PAM4": lambda: digital.constellation_calcdist([-3, -1, 1, 3], [0, 1, 2, 3], 2, 1)}[cls]()
        mod = digital.generic_mod(const, differential=False, samples_per_symbol=sps,
                                  excess_bw=float(rng.uniform(0.2, 0.5)))
        src = _bits(rng, n // sps + 64)
        tb.connect(src, mod)
        return mod
    if cls == "GFSK":
        h = float(rng.uniform(0.5, 1.0))
        mod = digital.gfsk_mod(samples_per_symbol=sps, sensitivity=np.pi * h / sps, bt=float(rng.uniform(0.3, 0.5)))
        tb.connect(_bits(rng, n // (8 * sps) + 64), mod)
        return mod
    if cls == "CPFSK":
        mod = analog.cpfsk_bc(float(rng.uniform(0.5, 1.0)), 1.0, sps)
        tb.connect(blocks.vector_source_b(rng.integers(0, 2, n // sps + 64, dtype=np.uint8).tolist(), False), mod)
        return mod
    if cls == "WBFM":
        dev = float(rng.uniform(0.05, 0.25))             # peak deviation (fraction of fs) at 3 sigma
        msg = _message(tb, rng, n, float(rng.uniform(0.005, 0.03)))
        mod = analog.frequency_modulator_fc(2 * np.pi * dev / 3)
        tb.connect(msg, mod)
        return mod
    if cls == "AM-DSB":
        msg = _message(tb, rng, n, float(rng.uniform(0.02, 0.10)))
        scale = blocks.multiply_const_ff(float(rng.uniform(0.3, 1.0)) / 3)     # modulation depth at 3 sigma
        carrier = blocks.add_const_ff(1.0 if rng.uniform() < 0.5 else 0.0)
        f2c = blocks.float_to_complex(1)
        tb.connect(msg, scale, carrier, f2c)
        return f2c
    if cls == "NOISE":
        return None
    raise ValueError(f"no GNU Radio transmitter for class {cls!r}")


def _rayleigh(rng, lo, hi):
    n = int(rng.integers(lo, hi + 1))
    p = np.exp(-np.arange(n) / max(1.0, n / 3))
    taps = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * np.sqrt(p / (2 * p.sum()))
    return (taps / np.sqrt(np.sum(np.abs(taps) ** 2))).tolist()


def transmit(cls, impairment, rng, n):
    """``n`` noiseless samples of class ``cls`` through the impairment's transmitter and
    channel blocks, or None for NOISE."""
    from gnuradio import blocks, channels, filter, gr
    tb = gr.top_block()
    mod = _modulator(tb, cls, rng, int((n + LEAD) * 1.3))      # room for a resampling to 1.25
    if mod is None:
        return None
    chain = [mod]
    taps = [complex(np.exp(1j * rng.uniform(0, 2 * np.pi)))]
    epsilon = 1.0
    if impairment == "multipath_short":
        taps = _rayleigh(rng, 3, 8)
    elif impairment == "multipath_long":
        taps = _rayleigh(rng, 10, 100)
    elif impairment == "clock":
        chain.append(filter.mmse_resampler_cc(0.0, float(rng.uniform(0.8, 1.25))))
        epsilon = 1.0 + float(rng.uniform(-1e-4, 1e-4))
    elif impairment == "iq_imbalance":
        chain.append(channels.iqbal_gen(float(rng.uniform(0.5, 2.0)), float(rng.uniform(2, 10))))
    elif impairment == "phase_noise":
        chain.append(channels.phase_noise_gen(float(rng.uniform(0.05, 0.3)), 0.1))
    elif impairment == "dynamic":
        chain.append(channels.dynamic_channel_model(1e6, 0.01, 1.0, 1.0, 100.0, 8, 10.0, False, 4.0,
                                                    [0.0, 1.6, 3.1], [1.0, 0.6, 0.3], 8, 0.0,
                                                    int(rng.integers(1, 2**30))))
    chain.append(channels.channel_model(0.0, float(rng.uniform(-0.01, 0.01)), epsilon, taps,
                                        int(rng.integers(1, 2**30))))
    head = blocks.head(gr.sizeof_gr_complex, n + LEAD)
    snk = blocks.vector_sink_c()
    tb.connect(*chain, head, snk)
    tb.run()
    x = np.asarray(snk.data(), np.complex64)[LEAD:]
    if len(x) < n:
        raise RuntimeError(f"{cls} through {impairment}: the flowgraph made {len(x)} of {n} samples")
    return x[:n]


def receive(x, n, snr_db, impairment, rng):
    """GNU Radio's Gaussian noise at ``snr_db`` per sample, then the receiver-side
    impairment (``pa`` before the noise: the transmitter's amplifier)."""
    from gnuradio import analog, blocks, channels, gr
    tb = gr.top_block()
    noise = analog.noise_source_c(analog.GR_GAUSSIAN, 1.0, int(rng.integers(1, 2**30)))
    if x is None:                                        # NOISE: the receiver's noise alone
        sig_amp = 0.0
        src = blocks.vector_source_c(np.zeros(n, np.complex64).tolist(), False)
    else:
        src = blocks.vector_source_c(x.tolist(), False)
        sig_amp = 1.0 / np.sqrt(max(float(np.mean(np.abs(x) ** 2)), 1e-20))
    chain = [src, blocks.multiply_const_cc(sig_amp)]
    if impairment == "pa" and x is not None:
        chain.append(channels.distortion_3_gen(float(rng.uniform(0.05, 0.2))))
    add = blocks.add_cc()
    tb.connect(*chain, (add, 0))
    tb.connect(noise, blocks.multiply_const_cc(10 ** (-snr_db / 20) if x is not None else 1.0), (add, 1))
    out = [add]
    if impairment == "gain_step":
        k = n // FRAME
        at = rng.integers(64, FRAME - 64, k)
        step = np.where(rng.uniform(size=k) < 0.5, 10.0, 0.1).astype(np.float32)    # +-20 dB
        g = np.where(np.arange(FRAME)[None, :] >= at[:, None], step[:, None], 1.0).astype(np.float32)
        gains = blocks.vector_source_c(g.ravel().astype(np.complex64).tolist(), False)
        mul = blocks.multiply_cc()
        tb.connect(add, (mul, 0))
        tb.connect(gains, (mul, 1))
        out = [mul]
    if impairment == "adc":
        rms = np.sqrt(1.0 + (10 ** (-snr_db / 10) if x is not None else 0.0))
        c2f = blocks.complex_to_float()
        fs = blocks.multiply_const_cc(1.0 / (3 * rms / np.sqrt(2)))     # full scale at 3 sigma per rail
        qi, qq = channels.quantizer(8), channels.quantizer(8)
        rail_i, rail_q = analog.rail_ff(-1.0, 1.0), analog.rail_ff(-1.0, 1.0)      # the ADC clips
        f2c = blocks.float_to_complex(1)
        tb.connect(out[-1], fs, c2f)
        tb.connect((c2f, 0), rail_i, qi, (f2c, 0))
        tb.connect((c2f, 1), rail_q, qq, (f2c, 1))
        out = [f2c]
    head = blocks.head(gr.sizeof_gr_complex, n)
    snk = blocks.vector_sink_c()
    tb.connect(out[-1], head, snk)
    tb.run()
    return np.asarray(snk.data(), np.complex64)


def evaluate(model=None, classes=None, impairments=None, snrs=(0, 10, 20, 30), n_per_point=100, seed=2026,
             threads=2, progress=True):
    """Accuracy (early exit at the model's T) per impairment, class and SNR on GNU
    Radio-made signals; exit-1 share; NOISE false alarms; confusion at SNR >= 10 dB."""
    from tqdm import tqdm
    from greatai.amc.engine import EarlyExitEngine
    from .benchutil import machine
    eng = EarlyExitEngine(model, threads=threads)
    classes = list(classes or [c for c in eng.classes if c != "UNKNOWN"])     # UNKNOWN has no transmitter
    impairments = list(impairments or IMPAIRMENTS)
    for name in impairments:
        if name not in IMPAIRMENTS:
            raise ValueError(f"unknown impairment {name!r}: one of {', '.join(IMPAIRMENTS)}")
    idx = {c: i for i, c in enumerate(eng.classes)}
    for c in classes:
        if c not in idx:
            raise ValueError(f"class {c!r} is not one of the model's {eng.classes}")
    per_seg = -(-n_per_point // SEGMENTS)
    n = per_seg * FRAME
    rng = np.random.default_rng(seed)
    t0 = time.monotonic()
    res = {"generator": "GNU Radio " + _gr_version() + " modulators and channel blocks (greatai_apps.eval_gr)",
           "model": str(eng.meta_path), "threshold": eng.threshold if eng.s2 else None, "seed": seed,
           "snr_db": list(snrs),
           "frames_per_point": per_seg * SEGMENTS, "classes": classes, "impairments": {}}
    C = len(eng.classes)
    jobs = [(imp, c) for imp in impairments for c in classes]
    bar = tqdm(total=len(jobs) * SEGMENTS, desc="GNU Radio signals", disable=not progress, leave=False)
    for imp in impairments:
        acc = np.zeros((len(classes), len(snrs)))
        exit1 = np.zeros((len(classes), len(snrs)))
        conf = np.zeros((C, C), np.int64)
        for ci, c in enumerate(classes):
            hits = np.zeros(len(snrs))
            e1 = np.zeros(len(snrs))
            for _ in range(SEGMENTS):
                x = transmit(c, imp, rng, n)
                bar.update()
                for si, s in enumerate(snrs):
                    y = receive(x, n, float(s), imp, rng).reshape(per_seg, FRAME)
                    r = eng.classify(y)
                    hits[si] += int(np.sum(r.label == idx[c]))
                    e1[si] += int(np.sum(r.exit == 1))
                    if s >= 10:
                        ok = r.label >= 0
                        np.add.at(conf, (np.full(int(ok.sum()), idx[c]), r.label[ok]), 1)
            acc[ci] = 100 * hits / (per_seg * SEGMENTS)
            exit1[ci] = 100 * e1 / (per_seg * SEGMENTS)
        hi = [i for i, s in enumerate(snrs) if s >= 10]
        row = {"description": IMPAIRMENTS[imp],
               "accuracy": {c: [round(float(v), 1) for v in acc[ci]] for ci, c in enumerate(classes)},
               "overall": [round(float(v), 2) for v in acc.mean(0)],
               "exit1_share": [round(float(v), 1) for v in exit1.mean(0)],
               "overall_snr_ge_10": round(float(acc[:, hi].mean()), 2) if hi else None,
               "confusion_snr_ge_10": conf.tolist()}
        if "NOISE" in classes and hi:
            row["noise_false_alarm_pct"] = round(100 - float(acc[classes.index("NOISE"), hi].mean()), 2)
        for q in ("QAM16", "QAM64"):
            if q in classes and hi:
                row[f"{q}_snr_ge_10"] = round(float(acc[classes.index(q), hi].mean()), 1)
        res["impairments"][imp] = row
    bar.close()
    res["seconds"] = round(time.monotonic() - t0, 1)
    res["machine"] = machine()
    res["model_classes"] = eng.classes
    return res


def _gr_version():
    from gnuradio import gr
    return gr.version()


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, row in res["impairments"].items():
        ax.plot(res["snr_db"], row["overall"], marker="o", label=name)
    ax.set_xlabel("SNR per sample (dB)")
    ax.set_ylabel("accuracy (%), mean over classes")
    ax.set_title("Early-exit AMC on GNU Radio-made signals, by impairment")
    ax.grid(alpha=.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(model=None, out="results/amc/eval_gnuradio.json", **kw):
    from greatai.amc.evaluate import save
    return save(evaluate(model, **kw), out, plot)


def attach_to_metadata(meta_path, res):
    """The independent evaluation's summary in the model's metadata, beside the
    simulator's (``evaluation``): accuracy at SNR >= 10 dB by impairment, QAM16/QAM64 and
    NOISE false alarms; the full tables stay in the results JSON."""
    from greatai import contract
    meta = contract.read_json(Path(meta_path))
    meta["evaluation_gnuradio"] = {
        "generator": res["generator"], "seed": res["seed"], "frames_per_point": res["frames_per_point"],
        "snr_db": res["snr_db"], "threshold": res["threshold"],
        "accuracy_snr_ge_10": {k: r["overall_snr_ge_10"] for k, r in res["impairments"].items()},
        "by_impairment": {k: {f: r[f] for f in ("QAM16_snr_ge_10", "QAM64_snr_ge_10", "noise_false_alarm_pct")
                              if f in r} for k, r in res["impairments"].items()},
        "impairments": {k: r["description"] for k, r in res["impairments"].items()}}
    contract.write(meta_path, meta)
    return meta
