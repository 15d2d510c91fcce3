"""The tables the `greatai` commands print."""
from __future__ import annotations

import json

from .benchutil import emit


def forecast(ev):
    hs = ev["horizons"]
    for metric in ("p_correct_occupied", "f1", "auc"):
        emit(f"\n{metric} (%) at horizon (frames):")
        emit(f"{'method':<34}" + "".join(f"{h:>7}" for h in hs))
        for name, m in ev["methods"].items():
            emit(f"{name:<34}" + "".join(f"{v:>7.1f}" for v in m[metric]))
    emit("\ntraining seconds: " + json.dumps(ev["training_seconds"]) + "\ngoals: " + json.dumps(ev["goals"]))


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
