"""The tables the `greatai` commands print."""
from __future__ import annotations

import json

import numpy as np

from .benchutil import emit


def forecast(ev):
    """A forecast evaluation: per simulator set (model.json's) or one GNU Radio-made set."""
    hs = ev["horizons"]
    sets = ev["sets"] if "sets" in ev else {ev.get("generator", "evaluation"): ev}
    for set_name, res in sets.items():
        emit(f"\n== {set_name}: {res['windows']} windows, occupancy {100 * res['occupancy_rate']:.1f} %")
        for metric in ("p_correct_occupied", "f1", "auc"):
            emit(f"\n{metric} (%) at horizon (frames):")
            emit(f"{'method':<34}" + "".join(f"{h:>7}" for h in hs))
            for name, m in res["methods"].items():
                emit(f"{name:<34}" + "".join(f"{v:>7.1f}" for v in m[metric]))
    if "training_seconds" in ev:
        emit("\ntraining seconds: " + json.dumps(ev["training_seconds"]))
    emit("goals: " + json.dumps(ev["goals"]))


def amc_eval_gnuradio(res):
    m = res["machine"]
    emit(f"model {res['model']}  T={res['threshold']}  {res['frames_per_point']} frames per class, impairment "
         f"and SNR, seed {res['seed']}; {res['generator']}; {m.get('cpu')} ({', '.join(m.get('isa', [])[:3])}...)")
    snrs = res["snr_db"]
    emit(f"{'impairment':<17}" + "".join(f"{f'{s:g} dB':>8}" for s in snrs) +
         f"{'>=10 dB':>9}{'QAM16':>7}{'QAM64':>7}{'noise FA':>9}{'exit1 %':>8}  worst class >= 10 dB")
    hi = [i for i, s in enumerate(snrs) if s >= 10]
    for name, row in res["impairments"].items():
        worst = min(row["accuracy"], key=lambda c: np.mean([row["accuracy"][c][i] for i in hi]) if hi else 0)
        w = np.mean([row["accuracy"][worst][i] for i in hi]) if hi else float("nan")
        cell = lambda k: f"{row[k]:>7.1f}" if k in row else f"{'':>7}"
        emit(f"{name:<17}" + "".join(f"{v:>8.1f}" for v in row["overall"]) +
             f"{row['overall_snr_ge_10'] if row['overall_snr_ge_10'] is not None else float('nan'):>9.1f}"
             + cell("QAM16_snr_ge_10") + cell("QAM64_snr_ge_10")
             + (f"{row['noise_false_alarm_pct']:>9.1f}" if "noise_false_alarm_pct" in row else f"{'':>9}")
             + f"{np.mean([row['exit1_share'][i] for i in hi]) if hi else float('nan'):>8.1f}  {worst} {w:.1f}")


def amc_openset(res):
    emit(f"model {res['model']}  {res['frames_per_kind_per_snr']} frames per kind and SNR {res['snr_db']} dB, "
         f"seed {res['seed']}; score: {res['score']}")
    emit(f"in-class accuracy {res['in_class_accuracy_pct']} %, mean confidence when right "
         f"{res['in_class_mean_confidence']}")
    emit(f"{'kind':<6} {'mean conf':>9} {'at exit 1 %':>11}  called")
    for k, r in res["out_of_class"].items():
        emit(f"{k:<6} {r['mean_confidence']:>9.3f} {r['exit1_pct']:>11.1f}  "
             + ", ".join(f"{n} {v:g} %" for n, v in r["called"].items()))
    emit(f"{'in-class loss (pts)':>20} {'out-of-class rejected %':>24}")
    for r in res["rows"][::5]:
        emit(f"{r['in_class_loss_pts']:>20.2f} {r['ood_rejected_pct']:>24.2f}")
    b = res["best_at_1pt"]
    emit(f"at <= 1 point of in-class loss: {b['ood_rejected_pct']} % rejected (goal >= 90 %)" if b else
         "no threshold keeps the in-class loss within 1 point")


def amc_eval(res):
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


def _machine_line(m):
    return f"{m.get('cpu')} ({', '.join(m.get('isa', [])[:3])}...), {m.get('cores')} cores"


def scanner_eval(res):
    s = res["score"]
    emit(f"wideband scanner on the simulated band: {res['samp_rate'] / 1e6:g} MS/s, {res['seconds']:g} s, "
         f"{res['emitters']} emitters, every_n {res['every_n']}, every frame classified; {_machine_line(res['machine'])}")
    emit(f"bursts {s['truth']}, emitters reported {s['detections']}: recall {s['recall_pct']} %, precision "
         f"{s['precision_pct']} %, classification accuracy {s['accuracy_pct']} %  ({res['rate_msps']} MS/s)")
    emit(f"{'class':<8}{'bursts':>8}{'found':>7}{'right':>7}")
    for c, r in res["per_class"].items():
        emit(f"{c:<8}{r['bursts']:>8}{r['found']:>7}{r['right']:>7}")


def scanner_bench(res):
    emit(f"wideband scanner, {res['samp_rate'] / 1e6:g} MS/s band of {res['emitters']} emitters, frames skipped "
         f"under load; {_machine_line(res['machine'])}")
    emit(f"{'every_n':>8}{'thr dB':>8}{'MS/s':>8}{'keeps up':>9}{'classified':>11}{'skipped':>9}"
         f"{'recall %':>9}{'prec %':>8}{'acc %':>7}")
    for r in res["rows"]:
        emit(f"{r['every_n']:>8}{r['threshold_db']:>8g}{r['rate_msps']:>8.2f}{str(r['keeps_up']):>9}"
             f"{r['classified']:>11}{r['skipped']:>9}{r['recall_pct']!s:>9}{r['precision_pct']!s:>8}"
             f"{r['accuracy_pct']!s:>7}")
    for r in res["rows"]:
        if "cpu_s_per_band_s" in r:
            emit(f"CPU seconds per second of band at every_n {r['every_n']}: "
                 + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_s_per_band_s"].items())
                 + f" (total {sum(r['cpu_s_per_band_s'].values()):.2f})")


def compressed(meta):
    """``greatai compress``: what was pruned, what stayed float, the cost and accuracy of both models."""
    c = meta["compression"]
    emit(f"{c['method']} of {c['source']['name']}")
    pr = c.get("pruning")
    if pr and "hidden" in pr:                  # the forecaster's ConvLSTM narrowed
        emit(f"  pruning ({pr['kind']}): hidden units {pr['hidden'][0]} -> {pr['hidden'][1]}; mean F1 at h = 1, 5, 8 "
             f"(validation) {c['float_metric_validation']:.2f} float, {-c['points_lost_validation']:+.2f} points, "
             f"after {c['finetuning']['epochs']} epoch(s) of fine-tuning")
    elif pr and "widths" in pr["history"][-1]:
        h = pr["history"][-1]
        emit(f"  pruning ({pr['kind']}): widths {h['widths']}, {100 * pr['sparsity']:.1f} % of the weights removed; "
             f"accuracy change at SNR >= 10 dB (validation, worse exit) {h['accuracy']:+.2f}")
    elif pr:
        emit(f"  pruning ({pr['kind']}): sparsity {100 * pr['sparsity']:.1f} % after {len(pr['history']) - 1} "
             f"round(s); accuracy change at SNR >= 10 dB (validation, worse exit) per round: "
             + ", ".join(f"{h['sparsity']:.2f}: {h['accuracy']:+.2f}{'' if h['accepted'] else ' (undone)'}"
                         for h in pr["history"][1:]))
    qa = c.get("qat")
    if qa:
        emit(f"  QAT: weights {qa['weight_bits']} bits, layer inputs {qa['act_bits']} bits, {qa['epochs']} epoch(s); "
             f"accuracy change at SNR >= 10 dB (validation, worse exit, fake quantisation) "
             f"{qa['accuracy_points_fake_quant']:+.2f} points")
    q = c if "scheme" in c else c.get("ptq")
    if q:
        emit(f"  int8 on {q['machine']['cpu']} ({', '.join(q['machine']['isa'])}): {q['scheme']['why']}")
        for role, lay in q["layers"].items():
            emit(f"  {role}: {len(lay['quantised'])} layers int8, float: {lay['float'] or 'none'}; accuracy lost "
                 f"({q.get('metric', 'at SNR >= 10 dB, validation')}) {lay['loss_points']:.2f} points")
    emit(f"{'':<11} {'MACs':>9} {'nz MACs':>9} {'nz params':>9} {'Mbit ops':>9} {'weight kbit':>11} {'file kB':>8} "
         f"{'score':>7}")
    for k in ("float", "compressed"):
        x = meta["cost"][k]
        emit(f"{k:<11} {x['dense_macs']:>9} {x['macs']:>9} {x['nonzero_params']:>9} {x['bops'] / 1e6:>9.1f} "
             f"{x['weight_mem_bits'] / 1e3:>11.1f} {x['file_bytes'] / 1e3:>8.1f} {x['score_vs_float']:>7.4f}")
    fe = c.get("float_evaluation_same_frames")
    if fe and meta.get("task") == "protobeam":
        emit(f"k-shot accuracy (%), seed {fe['seed']}, {fe['frames_per_beam_per_scenario']} frames per beam and "
             "scenario, the same frames and draws for both:")
        ks = list(fe["accuracy"][next(iter(fe["accuracy"]))])
        emit(f"{'group':<16} {'model':<11} " + " ".join(f"{'k=' + k:>6}" for k in ks))
        for g, acc in fe["accuracy"].items():
            for name, a in (("float", acc), ("compressed", meta["evaluation"]["accuracy"][g])):
                emit(f"{g:<16} {name:<11} " + " ".join(f"{a[k]:>6.2f}" for k in ks))
    elif fe and meta.get("task") == "forecast":
        emit(f"F1 (%) on {fe['windows']} simulator windows (seed {fe['seed']}), the same for both, threshold "
             f"{fe['threshold']}:")
        emit(f"{'':<11} " + " ".join(f"{'h=' + str(h + 1):>6}" for h in range(len(fe["f1"]))))
        for name, f1 in (("float", fe["f1"]), ("compressed", meta["evaluation"]["f1"])):
            emit(f"{name:<11} " + " ".join(f"{v:>6.2f}" for v in f1))
    elif fe and fe.get("threshold") is None:
        emit(f"accuracy at SNR >= 10 dB (one exit): float {fe['accuracy_snr_ge_10']['early']}, "
             f"compressed {meta['evaluation']['accuracy_snr_ge_10']['early']}")
    elif fe:
        emit(f"accuracy at SNR >= 10 dB (early exit): float {fe['accuracy_snr_ge_10']['early']} (T={fe['threshold']}), "
             f"compressed {meta['evaluation']['accuracy_snr_ge_10']['early']} (T={meta['thresholds']['exit']})")
