"""``greatai eval air``: the AMC model sent over a noisy radio link (seed 003), as GNU Radio
flowgraphs around the pure :mod:`greatai.air`.

The link is ``vector_source_c -> channels.channel_model (AWGN at the weight-to-noise ratio)
-> vector_sink_c``: the digital header (CRC-32, BPSK, each bit repeated) and then the
analog weight symbols, at one power per symbol.  The receiver decodes the header, takes the
noise variance from its known symbols, estimates the weights (ML, MMSE, MMSE_pb with lam and
beta chosen on validation frames), rebuilds the model and classifies evaluation frames with
it through ``EarlyExitEngine`` (early exit at the model's T).  Four models go: the shipped
float model, the same fine-tuned with weight-noise injection, magnitude-pruned to 50 %
(only the non-zero weights travel; their bitmap goes in the header), and pruned with noise
injection.  The conventional approach beside it: the ONNX files as bytes in 1 KiB packets
with a CRC-32 (GNU Radio's ``digital.crc``), QPSK (``chunks_to_symbols`` ->
``channel_model`` -> ``constellation_decoder``) at the same power per symbol; a model is
received only if every packet passes.
"""
from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path

import numpy as np

from greatai import air

from .benchutil import emit, machine, report

WNRS = (-5, 0, 5, 10, 15, 20, 25, 30)
HEADER_REPEAT = 15
LAMS = (0.0, 0.25, 0.5, 0.75, 0.9)        # lam as a share of its upper bound 1/2 + 1/(2 n)
BETAS = (0.0,)


def link(symbols: np.ndarray, wnr_db: float, seed: int, align: bool = True) -> np.ndarray:
    """The symbols through GNU Radio's channel_model at ``wnr_db`` (unit signal power per real
    dimension), aligned on the sync word at their start (the channel's resampler shifts them)."""
    from gnuradio import blocks, channels, gr
    v = float(np.sqrt(2.0 * 10 ** (-wnr_db / 10)))        # complex noise of V^2: V^2/2 per real dimension
    x = np.concatenate([symbols.astype(np.complex64), np.zeros(64, np.complex64)])   # the resampler's tail
    tb = gr.top_block()
    snk = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(x), channels.channel_model(noise_voltage=v, noise_seed=int(seed)), snk)
    tb.run()
    y = np.array(snk.data(), np.complex64)
    if not align:
        return y
    d = air.find_start(y)
    y = np.concatenate([np.zeros(max(-d, 0), np.complex64), y[max(d, 0):]])
    return y[:len(symbols)]


def send(tx: air.Transmission, model, wnr_db: float, seed: int, repeat: int = HEADER_REPEAT):
    """(payload symbols received, layers from the decoded header on the receiver's copy of the
    architecture ``model``, noise variance estimate)."""
    hs = air.header_symbols(tx.header, repeat)
    rx = link(np.concatenate([hs, tx.symbols]), wnr_db, seed)
    header, noise = air.decode_header(rx[:len(hs)], len(tx.header), repeat)
    return rx[len(hs):], air.parse_header(header, model), noise


def accuracy(model_json, frames, labels) -> float:
    from greatai.amc.engine import EarlyExitEngine
    e = EarlyExitEngine(model_json, threads=2)
    return 100.0 * float(np.mean(e.classify(frames).label == labels))


def received(model, rx, layers, noise, est, lam, beta, tmp, frames, labels) -> float:
    w = air.decode(rx, layers, noise, est, lam, beta)
    return accuracy(air.rebuild(model, w, Path(tempfile.mkdtemp(dir=tmp))), frames, labels)


def choose_pb(model, rx, layers, noise, tmp, val):
    """(lam, beta) of MMSE_pb with the best accuracy on the validation frames."""
    bound = 0.5 + 0.5 / max(noise, 1e-12)
    best = None
    for f in LAMS:
        for b in BETAS:
            lam = f * bound * (1 - 1e-6)
            acc = received(model, rx, layers, noise, "mmse_pb", lam, b, tmp, *val)
            if best is None or acc > best[0]:
                best = (acc, lam, b)
    return best[1], best[2]


@functools.lru_cache(maxsize=1)
def channel_shift() -> int:
    """Samples channel_model's resampler advances the stream by (measured once, on the sync word)."""
    return -air.find_start(link(air.SYNC.astype(np.complex64), 300.0, 0, align=False))


def digital(model, wnr_db: float, seed: int, packet: int = 1024) -> dict:
    """The model's ONNX files as bytes over QPSK in CRC-32 packets through channel_model
    (ideal synchronisation: the channel's own sample shift is undone by a delay before it)."""
    from gnuradio import blocks, channels, digital as gdig, gr
    from greatai import contract
    m = contract.load(model, "amc")
    data = b"".join(m.file(r).read_bytes() for r in contract.amc_roles(m.meta))
    crc = gdig.crc(32, 0x04C11DB7, 0xFFFFFFFF, 0xFFFFFFFF, True, True)
    pkts = [data[i:i + packet] for i in range(0, len(data), packet)]
    framed = b"".join(p + int(crc.compute(list(p))).to_bytes(4, "big") for p in pkts)
    const = gdig.constellation_qpsk()
    pts = [complex(p) * np.sqrt(2) / abs(complex(p)) for p in const.points()]     # |s|^2 = 2, as the weights
    v = float(np.sqrt(2.0 * 10 ** (-wnr_db / 10)))
    shift = channel_shift()
    tb = gr.top_block()
    snk = blocks.vector_sink_b()
    tb.connect(blocks.vector_source_b(list(framed) + [0] * 32), blocks.packed_to_unpacked_bb(2, gr.GR_MSB_FIRST),
               gdig.chunks_to_symbols_bc(pts), blocks.delay(gr.sizeof_gr_complex, max(shift, 0)),
               channels.channel_model(noise_voltage=v, noise_seed=int(seed)),
               gdig.constellation_decoder_cb(const.base()), blocks.unpacked_to_packed_bb(2, gr.GR_MSB_FIRST), snk)
    tb.run()
    rx = bytes(snk.data())[:len(framed)]
    n, ok = packet + 4, 0
    for i, p in enumerate(pkts):
        blk = rx[i * n:i * n + len(p) + 4]
        ok += len(blk) == len(p) + 4 and int(crc.compute(list(blk[:-4]))) == int.from_bytes(blk[-4:], "big")
    return {"bytes": len(data), "packets": len(pkts), "packets_ok": int(ok), "received": ok == len(pkts),
            "symbols": len(framed) * 4}


def variants(src, tmp, tiny: bool) -> dict:
    """The four models that travel (made with fixed seeds; the noise-trained at 10 dB WNR)."""
    from greatai import compress
    kw = dict(n_val=40 if tiny else 1000, eval_n=0, progress=False, n_train=20 if tiny else 1500, epochs=1)
    out = {"float": str(src)}
    out["noise-trained"] = str(Path(tmp) / "noise")
    compress.compress(src, out["noise-trained"], method="noise", noise_wnr_db=10.0, **kw)
    out["pruned 50%"] = str(Path(tmp) / "pruned")
    compress.compress(src, out["pruned 50%"], method="magnitude", sparsity=0.5, **kw)
    out["pruned 50% + noise-trained"] = str(Path(tmp) / "pruned_noise")
    compress.compress(src, out["pruned 50% + noise-trained"], method="magnitude", sparsity=0.5, noise_wnr_db=10.0,
                      **kw)
    return out


def run(out: str, model: str = "amc_ee", wnrs=WNRS, seeds: int = 2, n: int = 200, tiny: bool = False,
        symbol_rate: float = 1e6, png: str | None = None) -> dict:
    from greatai import contract
    from greatai.compress.amc import _frames
    src = contract.load(model, "amc")
    t0 = time.time()
    ev = _frames(src.meta, 7001, n)
    va = _frames(src.meta, 7002, max(20, n // 4))
    to_c = lambda x: np.ascontiguousarray(x).view(np.complex64)[..., 0]          # noqa: E731
    evf, vaf = (to_c(ev[0]), ev[1]), (to_c(va[0]), va[1])
    tmp = tempfile.mkdtemp(prefix="greatai-air-")
    rows, models = [], variants(src.path, tmp, tiny)
    for vname, mdir in models.items():
        tx = air.encode(mdir)
        sent_acc = accuracy(contract.resolve(mdir, "amc_ee"), *evf)
        emit(f"[eval air] {vname}: {tx.weights} weights in {len(tx.symbols)} symbols, accuracy as sent {sent_acc:.2f} %")
        for wnr in wnrs:
            row = {"model": vname, "wnr_db": wnr, "sent_accuracy": round(sent_acc, 2), "weights": tx.weights,
                   "payload_symbols": int(len(tx.symbols)),
                   "header_symbols": int(len(air.header_symbols(tx.header, HEADER_REPEAT)))}
            accs = {e: [] for e in air.ESTIMATORS}
            for s in range(seeds):
                try:
                    rx, layers, noise = send(tx, mdir, wnr, seed=1000 * s + int(wnr) + 100)
                except air.AirError as e:
                    row["header_error"] = str(e)
                    break
                if s == 0:
                    lam, beta = choose_pb(mdir, rx, layers, noise, tmp, vaf)
                    row.update(noise_estimate=round(noise, 5), noise_true=round(10 ** (-wnr / 10), 5),
                               lam=round(lam, 5), lam_share=round(lam / (0.5 + 0.5 / noise), 3), beta=beta)
                for e in air.ESTIMATORS:
                    accs[e].append(received(mdir, rx, layers, noise, e, lam, beta, tmp, *evf))
            for e in air.ESTIMATORS:
                if accs[e]:
                    row[e] = round(float(np.mean(accs[e])), 2)
                    row[f"{e}_gap"] = round(float(np.mean(accs[e])) - sent_acc, 2)
            rows.append(row)
    dig = []
    for wnr in wnrs:
        d = digital(src.path, wnr, seed=wnr + 500)
        d.update(wnr_db=wnr, accuracy=rows[0]["sent_accuracy"] if d["received"] else None)
        dig.append(d)
    res = {"machine": machine(), "model": src.name, "frames": int(len(evf[1])), "validation_frames": int(len(vaf[1])),
           "seeds": seeds, "header_repeat": HEADER_REPEAT, "symbol_rate": symbol_rate, "rows": rows,
           "digital": dig, "seconds": round(time.time() - t0, 1), "tiny": tiny,
           "chance": round(100.0 / len(src.classes), 2)}
    res["goal"] = goal(res)
    if png:
        plot(res, png)
    return report(out, res, table)


def goal(res) -> dict:
    """The lowest WNR where MMSE_pb is within 1 point of the model as sent, per model, with
    ML's loss there."""
    out = {}
    for name in dict.fromkeys(r["model"] for r in res["rows"]):
        ok = [r for r in res["rows"] if r["model"] == name and "mmse_pb_gap" in r and r["mmse_pb_gap"] >= -1.0]
        if ok:
            r = min(ok, key=lambda r: r["wnr_db"])
            out[name] = {"wnr_db": r["wnr_db"], "ml_gap": r["ml_gap"], "mmse_gap": r["mmse_gap"],
                         "mmse_pb_gap": r["mmse_pb_gap"], "ml_loses_10": r["ml_gap"] <= -10.0}
    return out


def table(res):
    m = res["machine"]
    emit(f"\nAMC model over the air ({res['frames']} frames, {res['seeds']} noise draws; {m['cpu']}): accuracy % "
         f"received, by estimator (the model as sent in brackets)")
    emit(f"{'model':28} {'WNR dB':>6} {'ML':>7} {'MMSE':>7} {'MMSE_pb':>8} {'lam/max':>8} {'sent':>6}")
    for r in res["rows"]:
        emit(f"{r['model']:28} {r['wnr_db']:>6} {r.get('ml', '-'):>7} {r.get('mmse', '-'):>7} "
             f"{r.get('mmse_pb', '-'):>8} {r.get('lam_share', '-'):>8} {r['sent_accuracy']:>6}")
    emit("\nconventional: ONNX bytes, QPSK, 1 KiB CRC-32 packets (received only if every packet passes)")
    for d in res["digital"]:
        emit(f"  WNR {d['wnr_db']:>3} dB: {d['packets_ok']}/{d['packets']} packets, "
             f"{'model received' if d['received'] else 'model lost'}")
    a, d = res["rows"][0], res["digital"][0]
    emit(f"\nchannel uses: analog {a['payload_symbols'] + a['header_symbols']} symbols "
         f"({(a['payload_symbols'] + a['header_symbols']) / res['symbol_rate'] * 1e3:.1f} ms at "
         f"{res['symbol_rate'] / 1e6:g} MS/s) against digital {d['symbols']} ({d['symbols'] / res['symbol_rate'] * 1e3:.0f} ms)")
    for k, v in res["goal"].items():
        emit(f"goal, {k}: MMSE_pb within 1 point from {v['wnr_db']} dB (ML {v['ml_gap']:+.2f}, MMSE "
             f"{v['mmse_gap']:+.2f}, MMSE_pb {v['mmse_pb_gap']:+.2f})")


def plot(res, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["model"] for r in res["rows"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), names):
        rows = [r for r in res["rows"] if r["model"] == name]
        x = [r["wnr_db"] for r in rows]
        for e, st in zip(air.ESTIMATORS, ("o-", "s-", "^-")):
            ax.plot(x, [r.get(e, np.nan) for r in rows], st, label=e.upper().replace("_PB", "_pb"))
        ax.axhline(rows[0]["sent_accuracy"], color="k", lw=0.8, ls=":", label="as sent")
        ax.plot([d["wnr_db"] for d in res["digital"]],
                [d["accuracy"] if d["accuracy"] is not None else res["chance"] for d in res["digital"]],
                "x--", color="grey", label="digital (QPSK, CRC)")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("WNR (dB)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("accuracy (%)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    m = res["machine"]
    isa = "AVX-512" if any(f.startswith("avx512") for f in m["isa"]) else "AVX2"
    fig.suptitle(f"AMC model over the air ({m['cpu']}, {isa})", fontsize=9)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- greatai demo air
def demo(wnr_db: float = 20.0, old: str = "amc_ee_int8", new: str = "amc_ee", rate: float = 1e6,
         before: float = 4.0, after: float = 4.0, seed: int = 5, out: str | None = None) -> dict:
    """A running classifier (``old``) on the simulated radio receives ``new`` over the air at
    ``wnr_db`` (MMSE_pb), as a model package on its ``model`` port, and swaps it in live:
    accuracy before, during (the old model while the weights travel and are estimated) and
    after (the received model), against the source's truth tags."""
    import pmt
    from gnuradio import blocks, gr
    from gnuradio import greatai
    from gnuradio.greatai.codec import to_python
    from greatai import contract, hotswap
    from greatai.compress.amc import _frames

    class Tags(gr.sync_block):
        def __init__(self):
            gr.sync_block.__init__(self, "air_demo_tags", [np.complex64], [])
            self.truth, self.results = [], []

        def work(self, input_items, output_items):
            for t in self.get_tags_in_window(0, 0, len(input_items[0])):
                key = pmt.symbol_to_string(t.key)
                if key == "sim_label":
                    self.truth.append((t.offset, pmt.symbol_to_string(t.value)))
                elif key == "amc":
                    d = to_python(t.value)
                    self.results.append((t.offset, d["label"], d["model"]))
            return len(input_items[0])
    tb = gr.top_block()
    amc = greatai.amc_classifier(model=old, overload="skip")
    tags, status = Tags(), blocks.message_debug()
    source = greatai.sim_source(samp_rate=rate, seed=seed, shuffle=True)     # Python blocks stay referenced
    tb.connect(source, blocks.throttle(gr.sizeof_gr_complex, rate), amc, tags)
    tb.msg_connect(amc, "model_status", status, "store")
    tb.start()
    time.sleep(before)
    t_tx, at_tx = time.monotonic(), amc.nitems_read(0)
    emit(f"[demo air] {old} running; sending {new} over the air at WNR {wnr_db:g} dB ...")
    src = contract.load(new, "amc")
    tx = air.encode(src.path)
    tmp = tempfile.mkdtemp(prefix="greatai-air-demo-")
    rx, layers, noise = send(tx, src.path, wnr_db, seed)
    va = _frames(src.meta, 7002, 50)
    lam, beta = choose_pb(src.path, rx, layers, noise, tmp, (np.ascontiguousarray(va[0]).view(np.complex64)[..., 0],
                                                             va[1]))
    model = air.rebuild(src.path, air.decode(rx, layers, noise, "mmse_pb", lam, beta), Path(tmp) / "received",
                        note=f"WNR {wnr_db:g} dB, MMSE_pb")
    data = np.frombuffer(hotswap.pack(model), np.uint8)
    amc.to_basic_block()._post(pmt.intern("model"), pmt.cons(pmt.to_pmt({"id": "air"}),
                                                              pmt.init_u8vector(len(data), data)))
    deadline = time.monotonic() + 30
    while not status.num_messages() and time.monotonic() < deadline:
        time.sleep(0.05)
    t_swap = time.monotonic()
    time.sleep(after)
    tb.stop()
    tb.wait()
    answer = to_python(status.get_message(0)) if status.num_messages() else {"ok": False, "reason": "no answer"}
    truth = sorted(tags.truth)
    offs = np.array([o for o, _ in truth], np.int64)

    def true_label(o):
        i = int(np.searchsorted(offs, o + 1023, side="right")) - 1     # the latest truth tag inside the frame
        return truth[i][1] if i >= 0 else None
    rows = {"before": [], "during": [], "after": []}
    for o, lab, m in tags.results:
        phase = "after" if m != old else ("before" if o < at_tx else "during")
        t = true_label(o)
        if t is not None:
            rows[phase].append(lab == t)
    table_rows = [{"phase": k, "model": old if k != "after" else answer.get("model", "?"), "frames": len(v),
                   "accuracy": round(100 * float(np.mean(v)), 2) if v else None} for k, v in rows.items()]
    res = {"machine": machine(), "wnr_db": wnr_db, "old": old, "new": new, "sample_rate": rate,
           "noise_estimate": round(noise, 5), "lam": lam, "beta": beta, "air_symbols": len(tx.symbols),
           "transmit_and_rebuild_s": round(t_swap - t_tx, 2), "answer": answer, "phases": table_rows}
    emit(f"\n{'phase':<8}{'model':>14}{'frames':>8}{'accuracy %':>12}")
    for r in table_rows:
        emit(f"{r['phase']:<8}{r['model']:>14}{r['frames']:>8}{'n/a' if r['accuracy'] is None else r['accuracy']:>12}")
    emit(f"swap answer: {'ok' if answer.get('ok') else 'refused: ' + str(answer.get('reason'))}; "
         f"{len(tx.symbols)} weight symbols, noise estimated {noise:.4f} (true {10 ** (-wnr_db / 10):.4f})")
    if out:
        report(out, res)
    return res
