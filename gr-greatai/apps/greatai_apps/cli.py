"""The ``greatai`` command: train, evaluate, benchmark, classify recordings, run demos,
capture, record, calibrate, listen to results.  Argument parsing only: each command lives in
``commands_models`` (train, eval, bench, classify), ``commands_radio`` (simulate, capture,
record, calibrate, listen) or ``commands_demo`` (demo, screenshot)."""
from __future__ import annotations

import argparse
import sys

from .benchutil import emit
from .commands_demo import cmd_demo, cmd_flowgraphs, cmd_screenshot
from .commands_models import cmd_bench, cmd_classify, cmd_compress, cmd_eval, cmd_train
from .commands_radio import cmd_calibrate, cmd_capture, cmd_listen, cmd_record, cmd_simulate, cmd_swap_model


def main(argv=None):
    p = argparse.ArgumentParser(prog="greatai", description="gr-greatai: train, evaluate and benchmark the models, "
                                "run the demos, capture, calibrate and listen to results")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a model on simulated data and export it to ONNX")
    t.add_argument("task", choices=["amc", "protobeam", "msm", "forecast", "segment"],
                   help="msm: pretrain the forecasting backbone; forecast: fine-tune its head (after msm); segment: "
                        "a segmentation head on the same backbone (frozen, last layer tuned, and from scratch)")
    t.add_argument("--config", default="full",
                   help="full (shipped model) or tiny (smoke test); amc also hardware, bacalhau (BacalhauNet, seed "
                        "004 Table 2), bacalhau-features (it on the early-exit model's features), tiny-hardware and "
                        "tiny-bacalhau")
    t.add_argument("--seed", type=int, default=1234)
    t.add_argument("--out", help="model directory (default: models/<name>)")
    t.add_argument("--results", help="where the evaluation JSON/PNG go (default results/<task>; amc: results/amc for "
                                     "amc_ee, else results/<model name>)")
    t.add_argument("--eval-n", type=int, default=200, help="frames per class per SNR in the evaluation")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--waveform", default=None,
                   help="protobeam: train for this reference only (a .cf32/.npy file of one period, or a named "
                        "reference); default: across the six named training references")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("eval", help="accuracy vs SNR (JSON + PNG), confusion matrix")
    e.add_argument("task", choices=["amc", "protobeam", "scanner", "forecast", "compress", "air"],
                   help="protobeam: Table I of a model through ProtoBeamEngine (seen/unseen front ends, held-out "
                        "family, independent physics; static and fading) beside the two non-learnt baselines; "
                        "compress: a compressed model (--model) against its float source: cost, latency, accuracy "
                        "and block throughput in one run (results/compress/amc.json); air: the AMC model sent "
                        "over a noisy link (analog weights with ML, MMSE, MMSE_pb; pruned or not, noise-trained "
                        "or not; against ONNX over QPSK packets): results/air/eval.json and .png")
    e.add_argument("--model", default=None)
    e.add_argument("--out", default="results/amc")
    e.add_argument("--n", type=int, default=None, help="frames per class per SNR (default 200); forecast "
                                                         "--gnuradio: bands (default 16)")
    e.add_argument("--seed", type=int, default=None, help="default 777 (2026 with --gnuradio)")
    e.add_argument("--threshold", type=float, default=None)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--quiet", action="store_true")
    e.add_argument("--gnuradio", action="store_true",
                   help="instead: signals made by GNU Radio's own modulators and channel blocks, by impairment "
                        "(--n frames per class, impairment and SNR; writes OUT/eval_gnuradio.json and .png); "
                        "forecast: bands made by GNU Radio flowgraphs (--n bands; OUT/eval_gnuradio.json)")
    e.add_argument("--open-set", action="store_true",
                   help="instead: how well the model's confidence, per exit, rejects signals outside its classes "
                        "(greatai.outliers: OFDM, LFM, CSS, OOK, MFSK, tone; --n frames per kind and SNR; writes "
                        "OUT/openset.json and .png)")
    e.add_argument("--seconds", type=float, default=2.0, help="compress: seconds per flowgraph measurement")
    e.add_argument("--pairs", type=int, default=3, help="compress: float/compressed measurement pairs (medians)")
    e.add_argument("--against", default=None, help="compress --model: an AMC model measured against this AMC model "
                                                   "(e.g. amc_ee) instead of its own float source")
    e.add_argument("--forecast-probe", action="store_true",
                   help="compress: whether int8 pays for the forecaster (all convolutions, head only): latency "
                        "and F1 against float (results/compress/forecast_probe.json)")
    e.add_argument("--sweep", action="store_true", help="compress: run every method on an AMC model (--model, "
                                                        "default amc_ee; variants under OUT/variants[_<model>]), "
                                                        "tabulate and plot them")
    e.add_argument("--reuse", action="store_true", help="compress --sweep: read the variants already made (the "
                                                        "latency is measured again)")
    e.add_argument("--impairments", default=None, help="with --gnuradio: a comma-separated subset")
    e.add_argument("--snrs", default="0,10,20,30", help="with --gnuradio: SNRs in dB")
    e.add_argument("--waveform", default="", help="protobeam: the reference waveform (name or file; default the "
                                                   "model's)")
    e.add_argument("--attach", action="store_true", help="with --gnuradio: record the summary in the model's "
                                                         "model.json (evaluation_gnuradio)")
    e.add_argument("--wnrs", default="-5,0,5,10,15,20,25,30", help="air: weight-to-noise ratios in dB")
    e.add_argument("--draws", type=int, default=2, help="air: noise draws per WNR (accuracies are means)")
    e.add_argument("--fading", type=float, default=None, metavar="FDTS",
                   help="air: flat Rayleigh fading before the noise (GNU Radio fading_model) at this normalised "
                        "Doppler f_D T_s (e.g. 1e-4), pilots and interleaving on both links; writes OUT/eval_fading.*")
    e.add_argument("--protect", type=int, default=0, metavar="N",
                   help="air: send every layer of at most N weights (biases, small layers) 4 times, combined at the "
                        "receiver; writes OUT/eval[_fading]_protected.*")
    e.add_argument("--tiny", action="store_true", help="air: tiny variants and frame counts (a smoke run)")
    e.add_argument("--stft-window", default="rect", choices=["rect", "hann"],
                   help="forecast --gnuradio: the greatai.stft block's window")
    e.set_defaults(fn=cmd_eval)

    z = sub.add_parser("compress", help="compress a model into a new model directory (post-training int8 "
                                        "quantisation; global magnitude pruning: one shot, IMP, FMP; "
                                        "quantisation-aware training at 2-8 bits: the AMC models (amc_ee, amc_hw, "
                                        "amc_bacalhau); PTQ of the ProtoBeam encoder and the forecaster; structured "
                                        "pruning of the forecaster's ConvLSTM)")
    z.add_argument("model", help="model directory, its model.json, or a shipped model's name (amc_ee, amc_hw, "
                                 "amc_bacalhau; protobeam: ptq only; forecast: ptq or structured)")
    z.add_argument("--method", default="ptq", help="ptq (QDQ int8, format chosen from this CPU); magnitude (one "
                                                   "shot to --sparsity, fine-tuned); imp or fmp (rounds until the "
                                                   "accuracy budget --max-loss is spent); noise (fine-tuning "
                                                   "with --noise-wnr weight noise only); structured (removes "
                                                   "--sparsity of the channels: narrower, faster graphs); qat "
                                                   "(quantisation-aware training at --qat-bits, default 8); graph (the same "
                                                   "weights, exported again with today's cheaper feature graph; "
                                                   "with --quantise, then PTQ)")
    z.add_argument("--noise-wnr", type=float, default=None,
                   help="fine-tuning with Gaussian weight noise at this weight-to-noise ratio in dB (noise "
                        "injection, for models sent over the air; any method but ptq)")
    z.add_argument("--noise-fading", action="store_true",
                   help="with --noise-wnr: the noise a flat Rayleigh-faded link leaves after the MMSE receiver (a "
                        "noise per weight, shrunk toward its layer's mean), --noise-wnr the mean WNR")
    z.add_argument("--mask-seed", type=int, default=None,
                   help="magnitude: prune at random, --sparsity of every weight layer, by masks drawn from this seed "
                        "(a receiver over the air draws them again: no position bitmap travels)")
    z.add_argument("--sparsity", type=float, default=0.5, help="magnitude: share of weights removed; structured: "
                                                               "share of channels removed; in (0, 1)")
    z.add_argument("--widths", default="c3", help="structured: the widths narrowed, comma-separated of c0 (stem), "
                                                  "c2 (trunk), c3 (branch 2; the default, where the MACs are)")
    z.add_argument("--quantise", action="store_true", help="pruning methods: then PTQ of the pruned model")
    z.add_argument("--qat-bits", type=int, default=None,
                   help="quantisation-aware training at this weight width (2-8 bits): the method qat, or after "
                        "magnitude/imp/fmp pruning instead of --quantise")
    z.add_argument("--act-bits", type=int, default=8, help="QAT: width of every weight layer's input (2-8 bits)")
    z.add_argument("--qat-epochs", type=int, default=6, help="QAT: training epochs (the best on validation kept)")
    z.add_argument("--qat-lr", type=float, default=0.25, help="QAT: learning rate, times pruning's fine-tuning rate")
    z.add_argument("--no-distil", action="store_true",
                   help="pruning and QAT: fine-tune on the labels only (default: also match the float model's "
                        "outputs)")
    z.add_argument("--epochs", type=int, default=None, help="pruning: fine-tuning epochs per round (default 1; "
                                                             "forecast structured: 16)")
    z.add_argument("--train-n", type=int, default=None, help="pruning: fine-tuning frames per class, default 2000 "
                                                            "(forecast structured: scenes per source, default 100)")
    z.add_argument("--out", default=None, help="new model directory (default: beside the source, <name>_int8 for "
                                               "ptq, <name>_<method>[_int8] for pruning)")
    z.add_argument("--max-loss", type=float, default=None,
                   help="accuracy points (validation, SNR >= 10 dB) the variant may lose against float: ptq "
                        "(default 0.25) hands layers back to float until it holds; imp/fmp (default 1.0) stop "
                        "pruning there; protobeam: 8-shot points, forecast: mean F1 points at h = 1, 5, 8 "
                        "(default 0.5 for both)")
    z.add_argument("--seed", type=int, default=4242, help="calibration data seed (validation: seed + 1)")
    z.add_argument("--val-n", type=int, default=None,
                   help="validation frames: AMC, per class (the accuracy budget and T; default 4000, as training "
                        "chose T); ProtoBeam, per beam and scenario (default 40); forecast: simulator scenes "
                        "(default 24)")
    z.add_argument("--eval-n", type=int, default=None,
                   help="evaluation of both: AMC, frames per class per SNR (default 100); ProtoBeam, frames per beam "
                        "and scenario (default 80, as greatai eval protobeam); forecast: simulator scenes (default 24)")
    z.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    z.add_argument("--threads", type=int, default=2)
    z.add_argument("--quiet", action="store_true")
    z.set_defaults(fn=cmd_compress)

    b = sub.add_parser("bench", help="throughput benchmark (prints a table, writes JSON)")
    b.add_argument("task", choices=["amc", "protobeam", "forecast", "soak", "sources", "memory", "scanner", "swap"],
                   help="a model's throughput; soak: a shipped headless flowgraph for minutes or hours; sources: "
                        "the simulated radios' rates; memory: the headless flowgraphs' RSS and the buffers; swap: "
                        "models hot-swapped into the AMC classifier at full rate")
    b.add_argument("--out", default=None, help="JSON path (default results/<task>/bench.json)")
    b.add_argument("--seconds", type=float, default=3.0, help="seconds per flowgraph measurement")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--batch", type=int, default=512, help="amc: frames per inference batch (the block's default)")
    b.add_argument("--pairs", type=int, default=3,
                   help="amc: alternating block/raw ONNX Runtime pairs per row (rates and overhead are medians)")
    b.add_argument("--display", action="store_true", help="also measure the throughput cost of amc_display (Qt)")
    b.add_argument("--compare", action="store_true",
                   help="amc: the shipped models' engines (amc_ee, amc_hw), early exit against full depth")
    b.add_argument("--flowgraph", choices=["amc", "protobeam", "forecast"], default="amc",
                   help="soak: which <flowgraph>_headless to run")
    b.add_argument("--rate", type=float, default=8e6, help="soak: sample rate (S/s)")
    b.add_argument("--minutes", type=float, default=2.0, help="soak: how long")
    b.add_argument("--subscriber", choices=["absent", "slow", "fast"], default="slow",
                   help="soak: ZMQ subscriber (slow: one message every 10 ms)")
    b.add_argument("--interval", type=float, default=10.0, help="soak: seconds between rows")
    b.add_argument("--warmup", type=float, default=60.0, help="soak: seconds before RSS growth counts")
    b.add_argument("--png", default=None, help="soak: plot path (default next to the JSON)")
    b.add_argument("--samples", type=float, default=1.2e8, help="swap: samples through each flowgraph")
    b.add_argument("--every", type=float, default=1.0, help="swap: seconds between swap requests")
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
    _radio_args(cp, "pluto", "pluto, usrp or sim", "sim: a schedule", rate=2e6, gain=30.0)
    cp.add_argument("--gain-mode", default="manual")
    cp.add_argument("--bandwidth", type=float, default=0.0, help="0: the sample rate")
    cp.add_argument("--seconds", type=float, default=5.0)
    cp.add_argument("--buffer", type=int, default=65536, help="samples per driver read")
    cp.add_argument("--label", help="annotation label (e.g. a modulation class)")
    cp.add_argument("--beam", type=int, help="beam index of a calibration capture (label Bnn)")
    cp.add_argument("--snr", type=float, help="SNR in dB, if known")
    cp.add_argument("--quiet", action="store_true")
    cp.set_defaults(fn=cmd_capture)

    rc = sub.add_parser("record", help="classify a radio live and record its IQ as SigMF with the results as "
                                       "annotations (the amc_record flowgraph; Ctrl-C leaves a valid file)")
    _radio_args(rc, "sim", "sim (default), pluto, usrp or file", "file: a recording to replay", rate=1e6, gain=40.0)
    rc.add_argument("--seconds", type=float, default=10.0, help="0: until Ctrl-C")
    rc.add_argument("--annotate", default="dwell", choices=("dwell", "frame"))
    rc.add_argument("--quiet", action="store_true", help="hide the flowgraph's own log")
    rc.set_defaults(fn=cmd_record)

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
    k.add_argument("--waveform", default=None, help="the reference the recording was sent on (name or file; "
                                                    "default: the recording's greatai:waveform, else the model's)")
    k.add_argument("--threads", type=int, default=2)
    k.set_defaults(fn=cmd_calibrate)

    sw = sub.add_parser("swap-model", help="swap the model of a running flowgraph's model block over ZMQ "
                                           "(sent as a model package; answered on its model_status port)")
    sw.add_argument("address", help="ZMQ address of the flowgraph's PULL source on the block's model port")
    sw.add_argument("model", help="model directory, its model.json, or a shipped model's name")
    sw.add_argument("--answers", help="ZMQ address of the zmq_result_sink the block's model_status goes to: "
                                      "wait for the answer and print it (exit 1 if refused)")
    sw.add_argument("--path", action="store_true", help="send the path only (the flowgraph reads the files)")
    sw.add_argument("--id", help="request id (default: a random one)")
    sw.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")
    sw.set_defaults(fn=cmd_swap_model)

    d = sub.add_parser("demo", help="run a shipped headless radio: early-exit AMC on the simulated source "
                                    "(`greatai demo [amc] [SECONDS]`, 0 = until Ctrl-C), or the ProtoBeam "
                                    "live-calibration demo (`greatai demo protobeam`)")
    d.add_argument("task", nargs="?", default="amc", help="amc (default), protobeam, or air (a new model sent to a "
                                                          "running classifier over a noisy link and swapped in)")
    d.add_argument("--wnr", type=float, default=20.0, help="air: weight-to-noise ratio of the link in dB")
    d.add_argument("seconds", nargs="?", type=float, default=20.0, help="amc: seconds to run (0: until Ctrl-C)")
    d.add_argument("--rate", type=float, default=None,
                   help="amc: sample rate of the simulated radio in S/s (default: the flowgraph's 1 MS/s)")
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
    g.add_argument("task", choices=["amc", "protobeam", "forecast", "scanner"])
    g.add_argument("out")
    g.add_argument("--seconds", type=float, default=4.0)
    g.set_defaults(fn=cmd_screenshot)

    f = sub.add_parser("flowgraphs", help="open the shipped flowgraphs in GNU Radio Companion (needs a display: "
                                          "xvfb-run -a greatai flowgraphs ...), check how they read, save pictures")
    f.add_argument("action", choices=["check", "pictures"])
    f.add_argument("names", nargs="*", help="shipped flowgraph names or .grc paths (default: all shipped)")
    f.add_argument("--out", default="results/flowgraphs", help="pictures: where the PNGs go")
    f.add_argument("--json", action="store_true", help="also print the whole report as JSON")
    f.set_defaults(fn=cmd_flowgraphs)

    s = sub.add_parser("listen", help="subscribe to a ZMQ result sink and print its JSON results")
    s.add_argument("address", nargs="?", default="tcp://127.0.0.1:5556")
    s.add_argument("--count", type=int, default=None, help="stop after this many results")
    s.add_argument("--timeout", type=float, default=None, help="stop after this many seconds without a result")
    s.add_argument("--frames", action="store_true",
                   help="print batch records (greatai-batch/1) as one line per frame; --count counts frames")
    s.set_defaults(fn=cmd_listen)

    a = p.parse_args(argv)
    if a.cmd == "demo":
        if a.task not in ("amc", "protobeam", "air"):
            try:                                    # `greatai demo 3`: the AMC radio for 3 s
                a.task, a.seconds = "amc", float(a.task)
            except ValueError:
                p.error(f"demo: unknown task {a.task!r} (amc, protobeam or air)")
    try:
        rc = a.fn(a)
    except (ValueError, OSError) as ex:   # ModelError, RecordingError, bad addresses ...
        emit(f"greatai {a.cmd}: {ex}", file=sys.stderr)
        return 2
    return rc or 0


def _radio_args(p, device, devices, other, rate, gain):
    """The recording commands' output and radio options (capture, record)."""
    p.add_argument("out", help="base name: writes OUT.sigmf-data and OUT.sigmf-meta")
    p.add_argument("--device", default=device, help=devices)
    p.add_argument("--address", default="", help=f"Pluto URI (ip:192.168.2.1, usb:) or UHD device args (type=b200); "
                                                 f"{other}")
    p.add_argument("--freq", type=float, default=2.4e9)
    p.add_argument("--rate", type=float, default=rate)
    p.add_argument("--gain", type=float, default=gain)


if __name__ == "__main__":
    sys.exit(main())
