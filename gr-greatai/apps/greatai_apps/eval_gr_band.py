"""The spectrogram forecaster on a band that GNU Radio makes, as a user's flowgraph would.

None of the training simulators' signal code (``greatai.forecast.traffic``,
``greatai.forecast.iqband``) makes these bands; only the truth rule is shared
(``iqband.occupancy``: a channel is occupied where an emitter's occupied bandwidth covers
a quarter of it in a quarter of a frame's FFT blocks).  One flowgraph per band:

* **emitters** (3-7): ``digital.generic_mod`` with GNU Radio's BPSK/QPSK/8PSK/16QAM
  constellations (RRC, excess bandwidth 0.2-0.5, 4-120 samples per symbol, so any
  bandwidth) fed by ``analog.random_uniform_source_b``, or FM (``analog.noise_source_f``
  through a low-pass ``filter.fir_filter_fff`` into ``analog.frequency_modulator_fc``,
  deviation ratio 1-4, Carson bandwidth);
* **keying**, drawn here: TDD (period 6-30 frames, duty 20-60 %), Markov on/off (mean
  times 3-25 frames) and frequency hopping (dwell 2-10 frames, 4-10 off-grid
  frequencies), switching at any FFT block: a keying vector at the block rate through
  ``blocks.repeat`` multiplies the emitter; hoppers are mixed by ``blocks.vco_c`` driven
  the same way, fixed emitters by ``blocks.rotator_cc`` at a random off-grid frequency;
* **level**: ``blocks.multiply_const_cc`` to an in-band SNR of 3-20 dB over
  ``analog.noise_source_c`` (each modulator's power measured on a short run first);
* **measurement**: ``blocks.add_cc`` -> ``greatai.stft`` (FFT 1024, hop 1024, 16
  averages, rectangular window by default) -> ``blocks.vector_sink_f``.

The forecaster runs through ``ForecastEngine`` (the blocks' engine); persistence and EWMA
run on the same windows.  ``greatai eval forecast --gnuradio [--attach]``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

FFT, AVERAGE = 1024, 16
LEAD = 8                # frames run and dropped first: the generic modulator starts ~800 samples per symbol late
CH = 64
CONSTELLATIONS = ("bpsk", "qpsk", "8psk", "qam16")


def _schedule(rng, kind, n_blocks):
    """Keying per FFT block (bool), centre per block (cycles/sample) and occupied width."""
    b = np.arange(n_blocks)
    ch = 1.0 / CH
    if kind == "tdd":
        width = rng.uniform(1.5, 8) * ch
        period = int(rng.integers(6, 31)) * AVERAGE
        on = ((b + int(rng.integers(0, period))) % period) < rng.uniform(0.2, 0.6) * period
    elif kind == "markov":
        width = rng.uniform(0.7, 6) * ch
        means = rng.uniform(3, 25, 2) * AVERAGE                  # on, off (blocks)
        runs = np.maximum(1, rng.exponential(np.tile(means, n_blocks // 16 + 2))).astype(int)
        states = np.tile([True, False], len(runs) // 2)[::1 if rng.random() < 0.5 else -1]
        on = np.repeat(states, runs[:len(states)])[:n_blocks]
        on = np.pad(on, (0, n_blocks - len(on)), constant_values=False)
    else:  # hopper
        width = rng.uniform(0.6, 2) * ch
        on = np.ones(n_blocks, bool)
    lo, hi = -0.5 + width / 2 + 0.002, 0.5 - width / 2 - 0.002
    if kind == "hopper":
        seq = rng.uniform(lo, hi, int(rng.integers(4, 11)))
        dwell = int(rng.integers(2, 11)) * AVERAGE
        fc = seq[((b + int(rng.integers(0, dwell))) // dwell) % len(seq)]
    else:
        fc = np.full(n_blocks, rng.uniform(lo, hi))
    return on, fc, width


def _modulator(tb, rng, width):
    """A GNU Radio transmitter whose occupied bandwidth is about ``width`` (cycles/sample);
    returns (block, the bandwidth it really occupies)."""
    from gnuradio import analog, digital, filter
    from gnuradio.filter import firdes
    if rng.random() < 0.25:                                   # FM
        d = rng.uniform(1, 4)
        fm = width / (2 * (d + 1))
        src = analog.noise_source_f(analog.GR_GAUSSIAN, 1.0, int(rng.integers(1, 2**30)))
        taps = firdes.low_pass(1.0, 1.0, fm, fm / 2)
        lp = filter.fir_filter_fff(1, taps)
        gain = 1.0 / np.sqrt(np.sum(np.square(taps)))          # unit-power message
        mod = analog.frequency_modulator_fc(2 * np.pi * d * fm * gain)
        tb.connect(src, lp, mod)
        return mod, width
    beta = float(rng.uniform(0.2, 0.5))
    sps = int(np.clip(round((1 + beta) / width), 4, 120))
    name = CONSTELLATIONS[int(rng.integers(len(CONSTELLATIONS)))]
    const = {"bpsk": digital.constellation_bpsk, "qpsk": digital.constellation_qpsk,
             "8psk": digital.constellation_8psk,
             "qam16": lambda: digital.qam.qam_constellation(16, differential=False)}[name]()
    mod = digital.generic_mod(const, differential=False, samples_per_symbol=sps, excess_bw=beta)
    tb.connect(analog.random_uniform_source_b(0, 256, int(rng.integers(1, 2**30))), mod)
    return mod, (1 + beta) / sps


def _power(make):
    """Mean power of a transmitter's output once it has started (a short run): the
    generic modulator's output only starts after about 800 samples per symbol."""
    from gnuradio import blocks, gr
    tb = gr.top_block()
    src = make(tb)
    head, sink = blocks.head(gr.sizeof_gr_complex, LEAD * FFT * AVERAGE + (1 << 16)), blocks.vector_sink_c()
    tb.connect(src, head, sink)
    tb.run()
    x = np.asarray(sink.data(), np.complex64)[-(1 << 16):]
    p = float(np.mean(np.abs(x) ** 2))
    if not p > 0:
        raise RuntimeError("a GNU Radio transmitter gave no output after its start-up")
    return p


def band(seed: int, n_frames: int = 192, window: str = "rect"):
    """One GNU Radio-made band: (spectrogram dB [n_frames, FFT] from the greatai.stft
    block, truth bool [n_frames, 64], emitters' description); ``LEAD`` frames more are
    made first and dropped."""
    from gnuradio import analog, blocks, gr, greatai
    from greatai.forecast.iqband import occupancy
    rng = np.random.default_rng(seed)
    n_frames += LEAD
    n_blocks = n_frames * AVERAGE
    n = n_blocks * FFT
    tb = gr.top_block()
    add = blocks.add_cc()
    tb.connect(analog.noise_source_c(analog.GR_GAUSSIAN, 1.0, int(rng.integers(1, 2**30))), (add, 0))
    truth = np.zeros((n_frames, CH), bool)
    emitters = []
    keep = []                                      # Python-side references for the flowgraph's life
    for i, kind in enumerate(rng.choice(["tdd", "markov", "hopper"], int(rng.integers(3, 8)))):
        on, fc, width = _schedule(rng, kind, n_blocks)
        mod_seed = int(rng.integers(1, 2**62))
        make = lambda t, s=mod_seed, w=width: _modulator(t, np.random.default_rng(s), w)[0]   # noqa: E731
        p = _power(make)
        mod, width = _modulator(tb, np.random.default_rng(mod_seed), width)
        snr_db = float(rng.uniform(3, 20))
        amp = np.sqrt(10 ** (snr_db / 10) * width / p)
        if np.ptp(fc) > 0:                        # hopper: a VCO driven at the block rate
            f = blocks.vector_source_f(fc.astype(np.float32).tolist(), False)
            rep = blocks.repeat(gr.sizeof_float, FFT)
            vco = blocks.vco_c(1.0, 2 * np.pi, 1.0)
            mix = blocks.multiply_cc()
            tb.connect(f, rep, vco, (mix, 1))
            tb.connect(mod, (mix, 0))
            keep += [f, rep, vco]
        else:
            mix = blocks.rotator_cc(2 * np.pi * float(fc[0]))
            tb.connect(mod, mix)
        key = blocks.vector_source_f(on.astype(np.float32).tolist(), False)
        key_rep = blocks.repeat(gr.sizeof_float, FFT)
        key_c = blocks.float_to_complex()
        keyed = blocks.multiply_cc()
        level = blocks.multiply_const_cc(complex(amp))
        tb.connect(key, key_rep, key_c, (keyed, 1))
        tb.connect(mix, (keyed, 0))
        tb.connect(keyed, level, (add, i + 1))
        keep += [mod, mix, key, key_rep, key_c, keyed, level]
        truth |= occupancy(on, fc, width, n_frames, AVERAGE, CH)
        emitters.append({"kind": kind, "width_channels": round(width * CH, 2), "snr_db": round(snr_db, 1),
                         "centre_channels": round((float(fc[0]) + 0.5) * CH, 2)})
    head = blocks.head(gr.sizeof_gr_complex, n)
    stft = greatai.stft(FFT, FFT, window, AVERAGE)
    sink = blocks.vector_sink_f(FFT)
    tb.connect(add, head, stft, sink)
    tb.run()
    spec = np.asarray(sink.data(), np.float32).reshape(-1, FFT)
    return spec[LEAD:n_frames], truth[LEAD:len(spec)], emitters


def evaluate(model=None, n_bands=16, n_frames=192, seed=2027, window="rect", stride=4, threads=2, progress=True):
    from greatai.forecast import engine as fe
    from greatai.forecast import metrics
    from greatai.forecast.train import TUNED
    from .benchutil import machine
    eng = fe.ForecastEngine(model or "", threads=threads)
    steps, h = eng.model.field("steps", int), eng.horizons
    ewma_thr = float(eng.model.meta.get("thresholds", {}).get("ewma", 0.3))
    if n_frames < steps + h:
        raise ValueError(f"bands of {n_frames} frames hold no window: the model needs {steps} + {h} frames")
    from tqdm import tqdm
    xs, ys, probs, described = [], [], [], []
    t0 = time.time()
    for i in tqdm(range(n_bands), desc="GNU Radio bands", disable=not progress, mininterval=2):
        spec, truth, emitters = band(seed * 1000 + i, n_frames, window)
        starts = np.arange(0, len(spec) - steps - h + 1, stride)
        win = spec[starts[:, None] + np.arange(steps)]                     # [N, T, FFT] dB
        prob, ok = eng.forecast(win)
        xs.append(fe.normalise(fe.pool(win, eng.channels)))
        ys.append(truth[starts[:, None] + steps + np.arange(h)].astype(np.float32))
        probs.append(prob)
        described.append(emitters)
    x, y, prob = np.concatenate(xs), np.concatenate(ys), np.concatenate(probs)
    methods = metrics.compare(x, y, {TUNED: (prob, eng.threshold)}, ewma_thr)
    lead = metrics.lead(methods, TUNED)
    h1 = round(methods[TUNED]["f1"][0] - methods[metrics.PERSISTENCE]["f1"][0], 2)
    return {"model": str(eng.meta_path), "generator": "GNU Radio " + _gr_version() + " flowgraphs (see "
            "greatai_apps.eval_gr_band)", "seed": seed, "bands": n_bands, "frames_per_band": n_frames,
            "window": window, "windows": int(len(x)), "occupancy_rate": round(float(y.mean()), 4),
            "horizons": list(range(1, h + 1)), "methods": methods,
            "goals": {"lead_over_persistence_f1_h5to8": {"points": lead, "goal": ">= 15", "met": lead >= 15},
                      "h1_vs_persistence": {"points": h1, "goal": ">= 0", "met": h1 >= 0}},
            "emitters": described, "seconds": round(time.time() - t0, 1), "machine": machine()}


def _gr_version():
    from gnuradio import gr
    return gr.version()


def run(model=None, out="results/forecast/eval_gnuradio.json", **kw):
    import json
    from greatai.fileio import atomic_write
    res = evaluate(model, **kw)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(res, indent=1))
    return res


def attach_to_metadata(meta_path, res):
    """The GNU Radio-made evaluation beside the simulators' in model.json:
    ``evaluation_gnuradio[<stft window>]``."""
    from greatai import contract
    meta = contract.read_json(Path(meta_path))
    meta.setdefault("evaluation_gnuradio", {})[res["window"]] = {
        k: res[k] for k in ("generator", "seed", "bands", "frames_per_band", "windows", "occupancy_rate", "methods",
                            "goals")}
    contract.write(meta_path, meta)
    return meta
