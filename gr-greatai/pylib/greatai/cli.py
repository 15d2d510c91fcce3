"""The ``greatai`` command: train, evaluate, benchmark, classify recordings, listen to results."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

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
    elif a.task == "msm":
        from .forecast import train
        out = Path(a.out or (_repo_models() / "forecast"))
        meta = train.pretrain(out, a.config, seed=a.seed, threads=a.threads, progress=not a.quiet)
        emit(json.dumps({"backbone": str(out / "backbone.onnx"), "seconds": meta["training"]["seconds"],
                         "loss_history": meta["training"]["loss_history"]}))
    elif a.task == "forecast":
        from .forecast import train
        out = Path(a.out or (_repo_models() / "forecast"))
        meta = train.finetune(out, a.config, seed=a.seed, threads=a.threads, progress=not a.quiet,
                              results_dir=a.results or "results/forecast")
        _print_forecast_table(meta["evaluation"])
    elif a.task == "protobeam":
        from .protobeam import train, evaluate
        out = Path(a.out or (_repo_models() / "protobeam"))
        meta = train.train_all(out, a.config, seed=a.seed, threads=a.threads, progress=not a.quiet,
                               results_dir=a.results or "results/protobeam")
        emit(evaluate.format_table(meta["evaluation"]))
        emit(json.dumps({"model": str(out / "model.json"), "goals": meta["evaluation"]["goals"],
                         "training_seconds": meta["training"]["seconds"]}))


def cmd_eval(a):
    if a.task == "amc":
        from .amc import evaluate
        res = evaluate.run(a.model, a.out, n_per_class_per_snr=a.n, seed=a.seed, threshold=a.threshold,
                           threads=a.threads, progress=not a.quiet)
        _print_eval_table(res)
        emit(f"\nwrote {Path(a.out) / 'eval.json'} and {Path(a.out) / 'eval.png'}")


def _print_forecast_table(ev):
    hs = ev["horizons"]
    for metric in ("p_correct_occupied", "f1", "auc"):
        emit(f"\n{metric} (%) at horizon (frames):")
        emit(f"{'method':<34}" + "".join(f"{h:>7}" for h in hs))
        for name, m in ev["methods"].items():
            emit(f"{name:<34}" + "".join(f"{v:>7.1f}" for v in m[metric]))
    emit("\ntraining seconds: " + json.dumps(ev["training_seconds"]) + "\ngoals: " + json.dumps(ev["goals"]))


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
        a.out = a.out or "results/amc/bench.json"
        res = bench.run(out=a.out, seconds=a.seconds, threads=a.threads, pairs=a.pairs, batch=a.batch)
        if a.display:
            from .runtime import atomic_write
            res["display"] = bench.display_overhead(seconds=a.seconds, threads=a.threads, batch=a.batch)
            atomic_write(a.out, json.dumps(res, indent=2))
    elif a.task == "protobeam":
        from .protobeam import bench
        bench.run(out=a.out or "results/protobeam/bench.json", seconds=a.seconds)
    elif a.task == "forecast":
        from .forecast import bench
        bench.run(out=a.out or "results/forecast/bench.json", seconds=a.seconds)


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
    if a.beams:
        return _simulate_beams(a)
    x, ann = sim.record(a.schedule, a.rate, a.seconds, (a.snr_min, a.snr_max), seed=a.seed, shuffle=a.shuffle)
    meta = recording.write_sigmf(a.out, x, a.rate, ann, description=f"greatai simulated radio: {a.schedule}",
                                 extra_global={"greatai:seed": a.seed})
    emit(json.dumps({"meta": str(meta), "samples": len(x), "annotations": len(ann)}))


def _simulate_beams(a):
    """A labelled ProtoBeam calibration sweep: SHOTS frames of every beam, one annotation each."""
    from . import recording
    from .protobeam import demo, sim as bsim
    parts, ann, off = [], [], 0
    for b, iq in demo.calibration_shots(a.front_end, a.position, a.shots, seed=a.seed):
        parts.append(iq.ravel())
        ann.append({"core:sample_start": off, "core:sample_count": iq.size, "core:label": f"B{b:02d}"})
        off += iq.size
    meta = recording.write_sigmf(a.out, np.concatenate(parts), a.rate, ann,
                                 description=f"greatai ProtoBeam calibration sweep: front end {a.front_end}, "
                                             f"position {a.position}, {a.shots} frames per beam",
                                 extra_global={"greatai:seed": a.seed, "greatai:front_end": a.front_end,
                                               "greatai:position": a.position, "greatai:frame_length": bsim.FRAME_LENGTH})
    emit(json.dumps({"meta": str(meta), "samples": off, "annotations": len(ann)}))


def labelled_frames(path, frame_length):
    """(label, frames [k, frame_length]) per labelled annotation of a SigMF recording (whole frames)."""
    from . import recording
    rec = recording.open_recording(path)
    anns = sorted((x for x in rec.annotations if "core:label" in x and "core:sample_start" in x),
                  key=lambda x: int(x["core:sample_start"]))
    if not anns:
        raise recording.RecordingError(f"{path} has no labelled annotations (core:label) to calibrate from")
    out = []
    for i, x in enumerate(anns):
        start = int(x["core:sample_start"])
        nxt = int(anns[i + 1]["core:sample_start"]) if i + 1 < len(anns) else len(rec.samples)
        k = int(x.get("core:sample_count", nxt - start)) // frame_length
        if k:
            out.append((str(x["core:label"]), np.asarray(rec.samples[start:start + k * frame_length])
                        .reshape(k, frame_length)))
    return out


def cmd_calibrate(a):
    """Calibrate ProtoBeam from a labelled recording: live over ZMQ, or into a file."""
    from .protobeam.engine import ProtoBeamEngine
    eng = ProtoBeamEngine(a.model, threads=a.threads)
    parts = labelled_frames(a.recording, eng.frame_length)
    for label, _ in parts:
        eng.beam_index(label)                    # unknown labels fail before anything is sent
    if a.address:
        from gnuradio.greatai.control import CalibrationClient
        cli = CalibrationClient(a.address)
        if a.reset:
            cli.request("reset")
        for label, fr in parts:
            cli.shots(label, fr, replace=a.replace)
        if a.save:
            cli.request("save", path=a.save)
        cli.close()
        emit(json.dumps({"sent": len(parts), "frames": int(sum(len(f) for _, f in parts)), "address": a.address}))
    else:
        if a.base:
            eng.load(a.base)
        for label, fr in parts:
            eng.add_shots(label, fr, replace=a.replace)
        out = eng.save(a.out)
        emit(json.dumps({"calibration": str(out), "calibrated_beams": eng.calibrated_beams,
                         "shots": eng.shots().tolist()}))
    return 0


def cmd_demo(a):
    """ProtoBeam live-calibration demo: the headless flowgraph plus the ZMQ client."""
    import subprocess
    from .protobeam import demo
    from .results import subscribe
    from .runtime import atomic_write
    from gnuradio.greatai.control import CalibrationClient
    root = Path(__file__).resolve().parents[3]
    grc = root / "flowgraphs" / "protobeam_headless.grc"
    build = root / "build" / "flowgraphs"
    build.mkdir(parents=True, exist_ok=True)
    subprocess.run(["grcc", "-o", str(build), str(grc)], check=True, stdout=subprocess.DEVNULL)
    fg = subprocess.Popen([sys.executable, str(build / "protobeam_headless.py"), "-d", str(a.timeout + 5),
                           "-f", str(a.front_end), "-t", str(a.switch_to), "-s", str(a.switch_after),
                           "-j", a.json_address, "-c", a.control_address],
                          stdout=subprocess.DEVNULL if a.quiet else None, stderr=subprocess.STDOUT)
    try:
        cli = CalibrationClient(a.control_address)
        score = demo.run(subscribe(a.json_address, timeout=10.0), cli.shots, a.front_end, 0, a.shots,
                         a.frames, timeout=a.timeout, log=lambda t: emit(f"[demo] {t}"))
        cli.close()
    finally:
        fg.terminate()
        fg.wait(10)
    rows = score.table()
    emit(f"\n{'phase':<30}{'frames':>8}{'accuracy %':>12}")
    for r in rows:
        emit(f"{r['phase']:<30}{r['frames']:>8}{'n/a' if r['accuracy'] is None else r['accuracy']:>12}")
    res = {"front_end": {"start": a.front_end, "after": score.new_front_end}, "shots_per_beam": a.shots,
           "phases": rows, "acks": len([x for x in score.acks if x.get("ok")])}
    if a.out:
        atomic_write(a.out, json.dumps(res, indent=2))
    return 0 if all(r["frames"] for r in rows) else 1


def cmd_capture(a):
    """Labelled SigMF from a radio, in the background with a progress bar."""
    from . import capture
    ann = {}
    if a.label:
        ann["core:label"] = a.label
    if a.beam is not None:
        ann["greatai:beam"] = a.beam
        ann.setdefault("core:label", f"B{a.beam:02d}")
    if a.snr is not None:
        ann["greatai:snr_db"] = a.snr
    try:
        reader = capture.open_reader(a.device, a.address, a.freq, a.rate, a.gain, a.gain_mode, a.bandwidth, a.buffer)
        meta, n, err = capture.capture(reader, a.out, a.rate, a.seconds, a.freq, ann,
                                       description=f"greatai capture: {a.device} {a.address or ''}".strip(),
                                       progress=not a.quiet)
    except capture.CaptureError as e:
        emit(f"greatai capture: {e}", file=sys.stderr)
        return 2
    emit(json.dumps({"meta": str(meta), "samples": n, "seconds": round(n / a.rate, 3),
                     "complete": n >= int(round(a.seconds * a.rate))}))
    if err:
        emit(f"greatai capture: ended early: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_screenshot(a):
    from .gui import screenshot
    panel = getattr(screenshot, a.task)(a.out, seconds=a.seconds)
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
    t.add_argument("task", choices=["amc", "protobeam", "msm", "forecast"],
                   help="msm: pretrain the forecasting backbone; forecast: fine-tune its head (after msm)")
    t.add_argument("--config", default="full", help="full (shipped model) or tiny (smoke test)")
    t.add_argument("--seed", type=int, default=1234)
    t.add_argument("--out", help="model directory (default: models/<name>)")
    t.add_argument("--results", help="where the evaluation JSON/PNG go (default results/<task>)")
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
    b.add_argument("task", choices=["amc", "protobeam", "forecast"])
    b.add_argument("--out", default=None, help="JSON path (default results/<task>/bench.json)")
    b.add_argument("--seconds", type=float, default=3.0, help="seconds per flowgraph measurement")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--batch", type=int, default=512, help="amc: frames per inference batch (the block's default)")
    b.add_argument("--pairs", type=int, default=3,
                   help="amc: alternating block/raw ONNX Runtime pairs per row (rates and overhead are medians)")
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
    m.add_argument("--beams", action="store_true", help="a ProtoBeam calibration sweep instead (labels B00..B23)")
    m.add_argument("--front-end", type=int, default=4, help="with --beams: front end 0-5")
    m.add_argument("--position", type=int, default=0, help="with --beams: receiver position 0-2")
    m.add_argument("--shots", type=int, default=8, help="with --beams: frames per beam")
    m.set_defaults(fn=cmd_simulate)

    cp = sub.add_parser("capture", help="record labelled SigMF from a Pluto, a USRP or the simulated radio "
                                        "(background, progress bar, atomic: Ctrl-C leaves a valid shorter file)")
    cp.add_argument("out", help="base name: writes OUT.sigmf-data and OUT.sigmf-meta")
    cp.add_argument("--device", default="pluto", help="pluto, usrp or sim")
    cp.add_argument("--address", default="", help="Pluto URI (ip:192.168.2.1, usb:) or UHD device args "
                                                  "(type=b200); sim: a schedule")
    cp.add_argument("--freq", type=float, default=2.4e9)
    cp.add_argument("--rate", type=float, default=2e6)
    cp.add_argument("--gain", type=float, default=30.0)
    cp.add_argument("--gain-mode", default="manual")
    cp.add_argument("--bandwidth", type=float, default=0.0, help="0: the sample rate")
    cp.add_argument("--seconds", type=float, default=5.0)
    cp.add_argument("--buffer", type=int, default=65536, help="samples per driver read")
    cp.add_argument("--label", help="annotation label (e.g. a modulation class)")
    cp.add_argument("--beam", type=int, help="beam index of a calibration capture (label Bnn)")
    cp.add_argument("--snr", type=float, help="SNR in dB, if known")
    cp.add_argument("--quiet", action="store_true")
    cp.set_defaults(fn=cmd_capture)

    k = sub.add_parser("calibrate", help="calibrate ProtoBeam from a labelled SigMF recording "
                                         "(live over ZMQ, or into a calibration file)")
    k.add_argument("recording")
    dest = k.add_mutually_exclusive_group(required=True)
    dest.add_argument("--address", help="ZMQ address of the flowgraph's calibration PULL source")
    dest.add_argument("--out", help="write a calibration file instead")
    k.add_argument("--base", help="with --out: start from this calibration file")
    k.add_argument("--replace", action="store_true", help="replace the beams' earlier shots")
    k.add_argument("--reset", action="store_true", help="with --address: reset the calibration first")
    k.add_argument("--save", help="with --address: then ask the block to save to this path")
    k.add_argument("--model", default=None)
    k.add_argument("--threads", type=int, default=2)
    k.set_defaults(fn=cmd_calibrate)

    d = sub.add_parser("demo", help="ProtoBeam live-calibration demo (headless flowgraph + ZMQ client)")
    d.add_argument("task", choices=["protobeam"])
    d.add_argument("--front-end", type=int, default=0)
    d.add_argument("--switch-to", type=int, default=4)
    d.add_argument("--switch-after", type=float, default=6.0)
    d.add_argument("--shots", type=int, default=8)
    d.add_argument("--frames", type=int, default=1500, help="frames scored per phase")
    d.add_argument("--timeout", type=float, default=60.0)
    d.add_argument("--json-address", default="tcp://127.0.0.1:5556")
    d.add_argument("--control-address", default="tcp://127.0.0.1:5560")
    d.add_argument("--out", default="results/protobeam/demo.json")
    d.add_argument("--quiet", action="store_true", help="hide the flowgraph's own log")
    d.set_defaults(fn=cmd_demo)

    g = sub.add_parser("screenshot", help="run a panel on the simulated source and save it as PNG")
    g.add_argument("task", choices=["amc", "protobeam", "forecast"])
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
