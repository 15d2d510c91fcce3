"""`greatai` commands about models: train, eval, bench, classify."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from . import tables
from .benchutil import emit, machine


def _repo_models():
    from greatai.contract import models_dirs
    return models_dirs()[0] if Path(models_dirs()[0]).is_dir() else Path("models")


def cmd_train(a):
    if a.task == "amc":
        from greatai.amc import evaluate, train
        out = Path(a.out or (_repo_models() / train.model_name(a.config)))
        meta_p = train.train(out, a.config, seed=a.seed, threads=a.threads, progress=not a.quiet)
        # measured accuracy goes into the metadata, from data the model never saw
        name = train.model_name(a.config)
        res = evaluate.run(out, a.results or ("results/amc" if name == "amc_ee" else f"results/{name}"),
                           n_per_class_per_snr=a.eval_n, threads=a.threads,
                           progress=not a.quiet)
        meta = evaluate.attach_to_metadata(meta_p, res)
        emit(json.dumps({"model": str(meta_p), "evaluation": meta["evaluation"]["accuracy_snr_ge_10"],
                          "threshold": meta.get("thresholds", {}).get("exit")}))
    elif a.task == "msm":
        from greatai.forecast import train
        out = Path(a.out or (_repo_models() / "forecast"))
        meta = train.pretrain(out, a.config, seed=a.seed, threads=a.threads, progress=not a.quiet)
        emit(json.dumps({"backbone": str(out / "backbone.onnx"), "seconds": meta["training"]["seconds"],
                         "loss_history": meta["training"]["loss_history"]}))
    elif a.task == "forecast":
        from greatai.forecast import train
        out = Path(a.out or (_repo_models() / "forecast"))
        meta = train.finetune(out, a.config, seed=a.seed, threads=a.threads, progress=not a.quiet,
                              results_dir=a.results or "results/forecast")
        tables.forecast(meta["evaluation"])
    elif a.task == "segment":
        from greatai.forecast import segment
        out = Path(a.out or (_repo_models() / "segment"))
        meta = segment.train(out, _repo_models() / "forecast", a.config, seed=a.seed, threads=a.threads,
                             progress=not a.quiet, results_dir=a.results or "results/segment")
        emit(json.dumps({"model": str(out / "model.json"), **{k: meta["evaluation"][k] for k in
                                                               ("variants", "frozen_vs_scratch")}}, indent=1))
    elif a.task == "protobeam":
        from greatai.protobeam import evaluate, train
        out = Path(a.out or (_repo_models() / "protobeam"))
        meta = train.train_all(out, a.config, seed=a.seed, threads=a.threads, progress=not a.quiet,
                               results_dir=a.results or "results/protobeam", waveform=a.waveform)
        emit(evaluate.format_table(meta["evaluation"]))
        emit(json.dumps({"model": str(out / "model.json"), "goals": meta["evaluation"]["goals"],
                         "training_seconds": meta["training"]["seconds"]}))


def cmd_compress(a):
    from greatai import compress, contract
    src = contract.resolve(a.model, "amc_ee").resolve().parent          # a path or a shipped model's name
    name = f"{src.name}_{compress.suffix(a.method, a.quantise, a.qat_bits, a.act_bits)}"
    out = Path(a.out) if a.out else src.parent / name
    task = contract.read_json(src / "model.json").get("task")
    kw = dict(seed=a.seed, progress=not a.quiet)
    kw.update({k: v for k, v in (("n_val", a.val_n), ("eval_n", a.eval_n)) if v is not None})   # else the task's
    if task == "forecast" and a.method == "structured":
        kw.update(max_loss=1.0 if a.max_loss is None else a.max_loss, sparsity=a.sparsity, epochs=a.epochs or 16,
                  threads=a.threads, **({} if a.train_n is None else {"n_train": a.train_n}))
    elif task in ("protobeam", "forecast"):
        kw["max_loss"] = 0.5 if a.max_loss is None else a.max_loss
    elif a.method == "ptq":
        kw["max_loss"] = 0.25 if a.max_loss is None else a.max_loss
    else:
        kw.update(max_loss=1.0 if a.max_loss is None else a.max_loss, sparsity=a.sparsity,
                  quantise_after=a.quantise, epochs=a.epochs or 1, n_train=a.train_n or 2000, threads=a.threads,
                  noise_wnr_db=a.noise_wnr, noise_fading=a.noise_fading, mask_seed=a.mask_seed, qat_bits=a.qat_bits,
                  act_bits=a.act_bits, qat_epochs=a.qat_epochs, qat_lr=a.qat_lr, distil=not a.no_distil,
                  widths=tuple(a.widths.split(",")))
    meta = compress.compress(str(src), out, method=a.method, overwrite=a.overwrite, **kw)
    tables.compressed(meta)
    emit(f"\nwrote {out}")


def cmd_eval(a):
    if a.n is None:
        a.n = 16 if a.task == "forecast" else 200
    if a.task == "air":
        from . import eval_air
        out = Path(a.out if a.out != "results/amc" else "results/air")
        name = "eval" + ("_fading" if a.fading else "") + ("_protected" if a.protect else "")
        eval_air.run(str(out / f"{name}.json"), model=a.model or "amc_ee", wnrs=[float(w) for w in a.wnrs.split(",")],
                     seeds=a.draws, n=min(a.n, 400), tiny=a.tiny, png=str(out / f"{name}.png"), fading=a.fading,
                     protect=a.protect)
        return
    if a.task == "compress":
        from . import eval_compress
        if a.sweep:
            eval_compress.sweep(a.out if a.out != "results/amc" else "results/compress", model=a.model or "amc_ee",
                                eval_n=min(a.n, 100), progress=not a.quiet, reuse=a.reuse)
            return
        if a.forecast_probe:
            eval_compress.forecast_probe(a.out if a.out != "results/amc" else "results/compress/forecast_probe.json",
                                         seconds=a.seconds, pairs=a.pairs)
            return
        if not a.model:
            raise SystemExit("greatai eval compress: give the compressed model with --model")
        eval_compress.run(a.model, a.out if a.out != "results/amc" else None,
                          seconds=a.seconds, threads=a.threads, pairs=a.pairs, against=a.against)
    elif a.task == "protobeam":
        from greatai.fileio import atomic_write
        from greatai.protobeam import evaluate as pb_eval
        from greatai.protobeam.engine import ProtoBeamEngine
        eng = ProtoBeamEngine(a.model or "", threads=a.threads, waveform=a.waveform)
        out = Path(a.out if a.out != "results/amc" else "results/protobeam") / "engine_eval.json"
        name = a.waveform or eng.model.meta["waveform"]["name"]
        res = pb_eval.table(lambda x, f: eng.embed(x)[0], n_per_beam=min(a.n, 80), seed=a.seed or 1235, repeats=10,
                            waveform=name if name in pb_eval.waveforms.NAMED else eng.waveform,
                            progress=None if a.quiet else (lambda k: print(f"evaluated {k}", flush=True)))
        res.update(model=str(eng.meta_path), engine="ProtoBeamEngine.embed (public API)",
                   waveform=name, machine=machine())
        atomic_write(out, json.dumps(res, indent=1))
        emit(pb_eval.format_table(res))
        emit(json.dumps(res["goals"]))
        emit(f"\nwrote {out}")
    elif a.task == "scanner":
        from . import scan
        out = Path(a.out if a.out != "results/amc" else "results/scanner") / "eval.json"
        res = scan.evaluate(out, seed=0 if a.seed is None else a.seed, model=a.model or "")
        tables.scanner_eval(res)
        emit(f"\nwrote {out}, {out.with_suffix('.png')} and {out.with_name('waterfall.png')}")
    elif a.task == "forecast":
        if not a.gnuradio:
            from greatai import contract
            meta = contract.load(a.model or "", "forecast").meta
            tables.forecast(meta["evaluation"])
            return
        from . import eval_gr_band
        out = Path(a.out if a.out != "results/amc" else "results/forecast") / \
            ("eval_gnuradio.json" if a.stft_window == "rect" else f"eval_gnuradio_{a.stft_window}.json")
        res = eval_gr_band.run(a.model, out, n_bands=a.n, seed=2027 if a.seed is None else a.seed,
                               window=a.stft_window, threads=a.threads, progress=not a.quiet)
        tables.forecast(res)
        if a.attach:
            eval_gr_band.attach_to_metadata(res["model"], res)
            emit(f"recorded in {res['model']}")
        emit(f"\nwrote {out}")
    elif a.task == "amc" and a.gnuradio:
        from . import eval_gr
        out = Path(a.out) / "eval_gnuradio.json"
        res = eval_gr.run(a.model, out, impairments=a.impairments.split(",") if a.impairments else None,
                          snrs=[float(v) for v in a.snrs.split(",")], n_per_point=a.n,
                          seed=2026 if a.seed is None else a.seed, threads=a.threads, progress=not a.quiet)
        tables.amc_eval_gnuradio(res)
        if a.attach:
            eval_gr.attach_to_metadata(res["model"], res)
            emit(f"recorded in {res['model']}")
        emit(f"\nwrote {out} and {out.with_suffix('.png')}")
    elif a.task == "amc" and a.open_set:
        from greatai.amc import openset
        out = Path(a.out) / "openset.json"
        res = openset.run(a.model, out, n=a.n, seed=4242 if a.seed is None else a.seed, threads=a.threads)
        tables.amc_openset(res)
        emit(f"\nwrote {out} and {out.with_suffix('.png')}")
    elif a.task == "amc":
        from greatai.amc import evaluate
        res = evaluate.run(a.model, a.out, n_per_class_per_snr=a.n, seed=777 if a.seed is None else a.seed,
                           threshold=a.threshold, threads=a.threads, progress=not a.quiet)
        tables.amc_eval(res)
        emit(f"\nwrote {Path(a.out) / 'eval.json'} and {Path(a.out) / 'eval.png'}")


def cmd_bench(a):
    if a.task == "amc" and a.compare:
        from . import bench_amc as bench
        bench.compare_models(out=a.out or "results/amc_hw/engine_speed.json", seconds=a.seconds, threads=a.threads)
    elif a.task == "amc":
        from . import bench_amc as bench
        a.out = a.out or "results/amc/bench.json"
        res = bench.run(out=a.out, seconds=a.seconds, threads=a.threads, pairs=a.pairs, batch=a.batch)
        if a.display:
            from greatai.fileio import atomic_write
            res["display"] = bench.display_overhead(seconds=a.seconds, threads=a.threads, batch=a.batch)
            atomic_write(a.out, json.dumps(res, indent=2))
    elif a.task == "protobeam":
        from . import bench_protobeam as bench
        bench.run(out=a.out or "results/protobeam/bench.json", seconds=a.seconds)
    elif a.task == "forecast":
        from . import bench_forecast as bench
        bench.run(out=a.out or "results/forecast/bench.json", seconds=a.seconds)
    elif a.task == "scanner":
        from . import scan
        res = scan.bench(out=a.out or "results/scanner/bench.json", seconds=a.seconds)
        tables.scanner_bench(res)
    elif a.task == "swap":
        from . import bench_swap as bench
        res = bench.run(out=a.out or "results/hotswap/bench.json", samples=a.samples, every=a.every, batch=a.batch)
        bad = [r for r in res["rows"] if r["samples_lost"] or r["samples_mismatched"] or r["old_model_after_new"]]
        return 1 if bad else 0
    elif a.task in ("sources", "memory"):
        from . import bench_sources as bench
        getattr(bench, a.task)(out=a.out or f"results/{a.task}/bench.json")
    elif a.task == "soak":
        from . import bench_soak as bench
        out = a.out or f"results/soak/{a.flowgraph}_{a.rate / 1e6:g}MSps_{a.minutes:g}min_{a.subscriber}.json"
        res = bench.run(a.flowgraph, a.rate, a.minutes, a.subscriber, a.interval, a.warmup, out,
                        a.png or out[:-5] + ".png")
        return 0 if res["stop_s"] <= 2.0 else 1


def cmd_classify(a):
    from greatai import recording, records
    from greatai.amc.engine import EarlyExitEngine
    from greatai.frames import STATUS_NAMES
    from greatai.results import dumps
    try:
        rec = recording.open_recording(a.file)
    except recording.RecordingError as e:
        emit(f"greatai classify: {e}", file=sys.stderr)
        return 2
    eng = EarlyExitEngine(a.model, threads=a.threads, threshold=a.threshold)
    names = records.label_names(eng.classes)
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
