"""The ``greatai`` command: train, evaluate, benchmark, classify recordings, listen to results."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .benchutil import emit


def _repo_models():
    from .runtime import models_dirs
    return models_dirs()[0] if Path(models_dirs()[0]).is_dir() else Path("models")


def cmd_train(a):
    if a.task == "amc":
        from .amc import train, evaluate
        out = Path(a.out or (_repo_models() / "amc_ee"))
        meta_p = train.train(out, a.config, seed=a.seed, threads=a.threads, progress=not a.quiet)
        # measured accuracy goes into the metadata, from data the model never saw
        res = evaluate.run(out, a.results or "results/amc", n_per_class_per_snr=a.eval_n, threads=a.threads,
                           progress=not a.quiet)
        meta = evaluate.attach_to_metadata(meta_p, res)
        emit(json.dumps({"model": str(meta_p), "evaluation": meta["evaluation"]["accuracy_snr_ge_10"],
                          "threshold": meta["default_threshold"]}))


def cmd_eval(a):
    if a.task == "amc":
        from .amc import evaluate
        res = evaluate.run(a.model, a.out, n_per_class_per_snr=a.n, seed=a.seed, threshold=a.threshold,
                           threads=a.threads, progress=not a.quiet)
        _print_eval_table(res)
        emit(f"\nwrote {Path(a.out) / 'eval.json'} and {Path(a.out) / 'eval.png'}")


def _print_eval_table(res):
    emit(f"model {res['model']}  T={res['threshold']}  {res['frames_per_class_per_snr']} frames/class/SNR, seed {res['seed']}")
    emit(f"{'SNR dB':>7} {'exit1 %':>8} {'exit2 %':>8} {'early %':>8} {'at exit1 %':>10}")
    for i, s in enumerate(res["snr_db"]):
        acc = res["accuracy"]
        emit(f"{s:>7} {acc['exit1'][i]:>8.2f} {acc['exit2'][i]:>8.2f} {acc['early'][i]:>8.2f} {res['exit1_share'][i]:>10.1f}")
    emit(f"SNR >= 10 dB: {res['accuracy_snr_ge_10']}; largest gap full - early: {res['max_gap_early_vs_full']} "
          f"points; NOISE recognised {res['noise_recognised']} %")
    conf = res["confusion_snr_ge_10"]
    names = [c[:6] for c in conf["classes"]]
    emit("\nconfusion matrix, early exit, SNR >= 10 dB (rows: true class, columns: predicted; frames):")
    emit(" " * 7 + "".join(f"{n:>7}" for n in names))
    for n, row in zip(names, conf["rows_true_cols_pred"]):
        emit(f"{n:>7}" + "".join(f"{v:>7}" for v in row))


def cmd_bench(a):
    if a.task == "amc":
        from .amc import bench
        res = bench.run(out=a.out, seconds=a.seconds, threads=a.threads)
        if a.display:
            from .runtime import atomic_write
            res["display"] = bench.display_overhead(seconds=a.seconds, threads=a.threads)
            atomic_write(a.out, json.dumps(res, indent=2))


def cmd_classify(a):
    from . import recording
    from .amc.engine import EarlyExitEngine
    from .results import dumps
    try:
        rec = recording.open_recording(a.file)
    except recording.RecordingError as e:
        emit(f"greatai classify: {e}", file=sys.stderr)
        return 2
    eng = EarlyExitEngine(a.model, threshold=a.threshold, threads=a.threads)
    names = eng.classes + ["INVALID"]
    from .runtime import STATUS_NAMES
    out = sys.stdout
    for offs, fr in recording.frames(rec.samples, eng.frame_length):
        r = eng.classify(fr)
        for off, lab, c, e, st in zip(offs.tolist(), r.label.tolist(), r.confidence.tolist(), r.exit.tolist(),
                                      r.status.tolist()):
            d = {"offset": off, "label": names[lab], "confidence": round(c, 5), "exit": e}
            if st:
                d["status"] = STATUS_NAMES[st]
            out.write(dumps(d) + "\n")
    out.flush()
    return 0


def cmd_simulate(a):
    from . import recording, sim
    x, ann = sim.record(a.schedule, a.rate, a.seconds, (a.snr_min, a.snr_max), seed=a.seed, shuffle=a.shuffle)
    meta = recording.write_sigmf(a.out, x, a.rate, ann, description=f"greatai simulated radio: {a.schedule}",
                                 extra_global={"greatai:seed": a.seed})
    emit(json.dumps({"meta": str(meta), "samples": len(x), "annotations": len(ann)}))


def cmd_screenshot(a):
    from .gui import screenshot
    panel = screenshot.amc(a.out, seconds=a.seconds)
    emit(json.dumps({"png": a.out, "frames": panel.frames}))


def cmd_listen(a):
    from .results import subscribe, dumps
    try:
        for obj in subscribe(a.address, timeout=a.timeout, count=a.count):
            sys.stdout.write(dumps(obj) + "\n")
            sys.stdout.flush()
    except ValueError as e:
        emit(f"greatai listen: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="greatai", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a model on simulated data and export it to ONNX")
    t.add_argument("task", choices=["amc"])
    t.add_argument("--config", default="full", help="full (shipped model) or tiny (smoke test)")
    t.add_argument("--seed", type=int, default=1234)
    t.add_argument("--out", help="model directory (default: models/<name>)")
    t.add_argument("--results", help="where the evaluation JSON/PNG go (default results/amc)")
    t.add_argument("--eval-n", type=int, default=200, help="frames per class per SNR in the evaluation")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("eval", help="accuracy vs SNR (JSON + PNG), confusion matrix")
    e.add_argument("task", choices=["amc"])
    e.add_argument("--model", default=None)
    e.add_argument("--out", default="results/amc")
    e.add_argument("--n", type=int, default=200, help="frames per class per SNR")
    e.add_argument("--seed", type=int, default=777)
    e.add_argument("--threshold", type=float, default=None)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(fn=cmd_eval)

    b = sub.add_parser("bench", help="throughput benchmark (prints a table, writes JSON)")
    b.add_argument("task", choices=["amc"])
    b.add_argument("--out", default="results/amc/bench.json")
    b.add_argument("--seconds", type=float, default=3.0, help="seconds per flowgraph measurement")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--display", action="store_true", help="also measure the throughput cost of amc_display (Qt)")
    b.set_defaults(fn=cmd_bench)

    c = sub.add_parser("classify", help="classify a SigMF (cf32_le) or raw cf32 recording: JSON lines on stdout")
    c.add_argument("file")
    c.add_argument("--model", default=None)
    c.add_argument("--threshold", type=float, default=None)
    c.add_argument("--threads", type=int, default=2)
    c.set_defaults(fn=cmd_classify)

    m = sub.add_parser("simulate", help="record the simulated radio as labelled SigMF (cf32_le)")
    m.add_argument("out", help="base name: writes OUT.sigmf-data and OUT.sigmf-meta")
    m.add_argument("--schedule", default="BPSK:0.1,QPSK:0.1,8PSK:0.1,QAM16:0.1,QAM64:0.1,PAM4:0.1,GFSK:0.1,"
                                             "CPFSK:0.1,WBFM:0.1,AM-DSB:0.1,NOISE:0.1")
    m.add_argument("--rate", type=float, default=1e6, help="sample rate (S/s)")
    m.add_argument("--seconds", type=float, default=1.1)
    m.add_argument("--snr-min", type=float, default=10.0)
    m.add_argument("--snr-max", type=float, default=20.0)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--shuffle", action="store_true")
    m.set_defaults(fn=cmd_simulate)

    g = sub.add_parser("screenshot", help="run a panel on the simulated source and save it as PNG")
    g.add_argument("task", choices=["amc"])
    g.add_argument("out")
    g.add_argument("--seconds", type=float, default=4.0)
    g.set_defaults(fn=cmd_screenshot)

    s = sub.add_parser("listen", help="subscribe to a ZMQ result sink and print its JSON results")
    s.add_argument("address", nargs="?", default="tcp://127.0.0.1:5556")
    s.add_argument("--count", type=int, default=None, help="stop after this many results")
    s.add_argument("--timeout", type=float, default=None, help="stop after this many seconds without a result")
    s.set_defaults(fn=cmd_listen)

    a = p.parse_args(argv)
    try:
        rc = a.fn(a)
    except (ValueError, OSError) as ex:   # ModelError, RecordingError, bad addresses ...
        emit(f"greatai {a.cmd}: {ex}", file=sys.stderr)
        return 2
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
