"""Run the wideband scanner on the simulated band and score it: detection recall and
precision and classification accuracy against the source's truth
(``greatai.wideband.score``), and the rate it keeps (band samples per second of wall
time, with nothing throttling the source).  ``greatai eval scanner`` (every frame
classified: the scores, a confusion matrix and a waterfall with the boxes) and
``greatai bench scanner`` (frames skipped under load, as live: the rate at each setting
of the load controls)."""
from __future__ import annotations

import time

import numpy as np

from greatai import scanner, wideband


# GNU Radio names each C++ block's thread after the block (the kernel keeps 15 characters);
# the Python blocks' threads do not always carry their names here, so the detector, the
# simulated source and the inference worker are counted together
CPU_GROUPS = {"freq_xlating": "frequency translators", "pfb_arb_resamp": "resamplers", "greatai_stft": "STFT",
              "head": "head"}


def run(samp_rate: float = 20e6, seconds: float = 3.0, seed: int = 0, every_n: int = 4, threshold_db: float = 8.0,
        overload: str = "skip", slots: int = 5, model: str = "", log=print, census: float = 0.0) -> dict:
    """One run: wideband_source -> head -> emitter_scanner; the reports are collected.
    ``census``: also the CPU each part takes (cores busy, by thread) over that many
    seconds from 0.5 s in (the run must last longer)."""
    from gnuradio import blocks, gr, greatai
    from gnuradio.greatai import codec
    t0 = time.perf_counter()
    src = greatai.wideband_source(samp_rate, "", 0.6, seed)
    made = time.perf_counter() - t0
    n = int(round(seconds * samp_rate))
    head = blocks.head(gr.sizeof_gr_complex, n)
    scan = greatai.emitter_scanner(samp_rate, 0.0, every_n=every_n, threshold_db=threshold_db, slots=slots,
                                   overload=overload, model=model)
    store = blocks.message_debug()
    tb = gr.top_block()
    tb.connect(src, head, scan)
    tb.msg_connect(scan, "emitters", store, "store")
    t1 = time.perf_counter()
    tb.start()
    cpu = None
    if census:                       # CPU per part over the middle of the run (threads live)
        from .benchutil import cpu_by_group, thread_cpu
        time.sleep(0.5)
        c0, tc0 = thread_cpu(), time.perf_counter()
        time.sleep(census)
        cpu = cpu_by_group(c0, thread_cpu(), CPU_GROUPS, "Python: detector, source, inference")
        cpu = {k: round(v / (time.perf_counter() - tc0), 3) for k, v in cpu.items()}   # cores
    tb.wait()
    wall = time.perf_counter() - t1
    reports = [codec.to_python(store.get_message(i)) for i in range(store.num_messages())]
    truth = src.truth(n / samp_rate)
    tracks = scanner.tracks_from_reports(reports)
    # a dwell still open when the stream ended: its emitters' tracks end there
    score = wideband.score(tracks, truth)
    m = scan.metrics()
    res = {"samp_rate": samp_rate, "seconds": n / samp_rate, "emitters": len(src.band.emitters),
           "every_n": every_n, "threshold_db": threshold_db, "overload": overload, "slots": slots,
           "band_made_s": round(made, 2), "wall_s": round(wall, 3), "rate_msps": round(n / wall / 1e6, 2),
           "keeps_up": bool(n / wall >= samp_rate), "reports": len(reports), "score": score,
           "metrics": {k: int(v) for k, v in m.items()},
           "per_class": _per_class(tracks, truth), "tracks": tracks}
    if cpu is not None:              # cores busy -> CPU seconds per second of band
        res["cpu_s_per_band_s"] = {k: round(v * samp_rate / (n / wall), 3) for k, v in cpu.items()}
    log(f"scanner: {res['rate_msps']} MS/s of band ({'keeps up' if res['keeps_up'] else 'does not keep up'} "
        f"with {samp_rate / 1e6:g} MS/s); recall {score['recall_pct']} %, precision {score['precision_pct']} %, "
        f"accuracy {score['accuracy_pct']} %")
    return res


def _per_class(tracks, truth) -> dict:
    """Per true class: bursts, how many a track found, and how many of those it labelled right."""
    out = {}
    for t in truth:
        m = [d for d in tracks if wideband.match(t, d)]
        row = out.setdefault(t["label"], {"bursts": 0, "found": 0, "right": 0})
        row["bursts"] += 1
        row["found"] += bool(m)
        row["right"] += any(d.get("label") == t["label"] for d in m)
    return out


def confusion(tracks, truth, classes) -> np.ndarray:
    """[true class, label given] counts over matched (truth burst, track) pairs; the last
    column is 'no label'."""
    idx = {c: i for i, c in enumerate(classes)}
    cm = np.zeros((len(classes), len(classes) + 1), np.int64)
    for t in truth:
        for d in tracks:
            if wideband.match(t, d):
                cm[idx[t["label"]], idx.get(d.get("label"), len(classes))] += 1
    return cm


def evaluate(out="results/scanner/eval.json", samp_rate: float = 20e6, seconds: float = 3.0, seed: int = 0,
             every_n: int = 4, model: str = "") -> dict:
    """Every frame classified (overload 'block'): scores, per-class table, a confusion
    matrix (classes plus UNKNOWN, and 'no label') and a waterfall with the boxes."""
    from pathlib import Path
    from greatai.amc.evaluate import save
    from greatai_apps.benchutil import machine
    from gnuradio import greatai
    res = run(samp_rate, seconds, seed, every_n, overload="block", model=model)
    classes = list(greatai.emitter_scanner(samp_rate, slots=1, model=model).engine.classes)
    src = greatai.wideband_source(samp_rate, "", 0.6, seed)
    truth = src.truth(res["seconds"])
    res.update(machine=machine(), classes=classes,
               confusion=confusion(res["tracks"], truth, classes).tolist(), truth=truth)
    out = Path(out)

    def plots(r, png):
        plot_confusion(r, png)
        plot_waterfall(src.band.x, samp_rate, r["tracks"], truth, png.with_name("waterfall.png"))
    return save(res, out, plots)


def bench(out="results/scanner/bench.json", samp_rate: float = 20e6, seconds: float = 3.0,
          settings=((1, 8.0), (4, 8.0), (16, 8.0), (4, 12.0)), model: str = "") -> dict:
    """The rate the scanner keeps with frames skipped under load (as live), at each setting
    of its load controls (every_n, threshold_db); the band is made once."""
    from greatai.amc.evaluate import save
    from greatai_apps.benchutil import machine
    rows = []
    for every_n, thr in settings:           # a new flowgraph each time; the band is made once (wideband.made)
        default = (every_n, thr) == (4, 8.0)
        r = run(samp_rate, seconds, 0, every_n, thr, "skip", model=model, census=1.5 if default else 0.0)
        m = r["metrics"]
        rows.append({"every_n": every_n, "threshold_db": thr, "rate_msps": r["rate_msps"], "keeps_up": r["keeps_up"],
                     "classified": m["classified"], "skipped": m["skipped"], "recall_pct": r["score"]["recall_pct"],
                     "precision_pct": r["score"]["precision_pct"], "accuracy_pct": r["score"]["accuracy_pct"]})
        if default:
            rows[-1]["cpu_s_per_band_s"] = r["cpu_s_per_band_s"]
    res = {"machine": machine(), "samp_rate": samp_rate, "seconds": seconds, "emitters": 5, "rows": rows}
    return save(res, out, lambda r, png: None)


def plot_confusion(res, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cm = np.asarray(res["confusion"], float)
    rows = cm.sum(1) > 0
    names = [c for c, k in zip(res["classes"], rows) if k]
    cm = cm[rows]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.imshow(cm / np.maximum(cm.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, int(v), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(cm.shape[1]), list(res["classes"]) + ["no label"], rotation=60, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("scanner's label")
    ax.set_ylabel("true emitter")
    ax.set_title(f"wideband scanner, {res['samp_rate'] / 1e6:g} MS/s band: bursts by label")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def plot_waterfall(x, samp_rate, tracks, truth, png, seconds: float = 0.6, fft_size: int = 1024, average: int = 8):
    """The band's spectrogram (MHz across, s up) with the truth (dashed) and the scanner's
    emitters (solid, labelled) over it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from greatai import spectrum
    n = min(len(x), int(seconds * samp_rate))
    from greatai.forecast.engine import pool
    db = pool(spectrum.power_db(x[:n], fft_size, fft_size, spectrum.window("hann", fft_size), average), 512)
    fig, ax = plt.subplots(figsize=(9, 5))
    ext = (-samp_rate / 2e6, samp_rate / 2e6, 0, len(db) * fft_size * average / samp_rate)
    ax.imshow(db, origin="lower", aspect="auto", extent=ext, cmap="viridis",
              vmin=np.percentile(db, 5), vmax=np.percentile(db, 99.7))
    for t in truth:
        if t["start"] < ext[3]:
            ax.add_patch(Rectangle(((t["center_hz"] - t["bandwidth_hz"] / 2) / 1e6, t["start"]), t["bandwidth_hz"] / 1e6,
                                   min(t["stop"], ext[3]) - t["start"], fill=False, ls="--", ec="white", lw=1))
    for d in tracks:
        if d["start"] < ext[3]:
            lo = (d["center_hz"] - d["bandwidth_hz"] / 2) / 1e6
            ax.add_patch(Rectangle((lo, d["start"]), d["bandwidth_hz"] / 1e6, min(d["stop"], ext[3]) - d["start"],
                                   fill=False, ec="red", lw=1.5))
            top = min(d["stop"], ext[3])
            ax.text(lo + d["bandwidth_hz"] / 1e6 + 0.15, (d["start"] + top) / 2, d.get("label") or "?", color="red",
                    fontsize=7, va="center", ha="left", bbox=dict(fc="white", ec="none", alpha=0.7, pad=0.5))
    ax.set_xlabel("frequency offset (MHz)")
    ax.set_ylabel("time (s)")
    ax.set_title("wideband scanner: truth (dashed) and emitters found, labelled (red)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
