"""`greatai demo` and `greatai screenshot`: the shipped flowgraphs and panels, running."""
from __future__ import annotations

import json
import os
import subprocess

from .benchutil import emit
from . import flowgraphs


def cmd_demo(a):
    if a.task == "protobeam":
        return demo_protobeam(a)
    if a.task == "air":
        from . import eval_air
        res = eval_air.demo(wnr_db=a.wnr, before=a.seconds / 2, after=a.seconds / 2,
                            out=a.out if a.out != "results/protobeam/demo.json" else "results/air/demo.json")
        return 0 if res["answer"].get("ok") else 1
    cmd = flowgraphs.command("amc_headless", "--duration", a.seconds,
                             *(("--samp-rate", a.rate) if a.rate else ()))
    os.execv(cmd[0], cmd)


def demo_protobeam(a):
    """ProtoBeam live-calibration demo: the headless flowgraph plus the ZMQ client."""
    from greatai.fileio import atomic_write
    from greatai.protobeam import demo
    from greatai.results import subscribe
    from gnuradio.greatai.control import CalibrationClient
    fg = subprocess.Popen(flowgraphs.command("protobeam_headless", "-d", a.timeout + 5, "-f", a.front_end,
                                             "-t", a.switch_to, "-s", a.switch_after, "-j", a.json_address,
                                             "-c", a.control_address),
                          stdout=subprocess.DEVNULL if a.quiet else None, stderr=subprocess.STDOUT)
    try:
        cli = CalibrationClient(a.control_address)
        score = demo.run(subscribe(a.json_address, timeout=10.0, per_frame=True), cli.shots, a.front_end, 0, a.shots,
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


def cmd_screenshot(a):
    from . import screenshot
    panel = getattr(screenshot, a.task)(a.out, seconds=a.seconds)
    emit(json.dumps({"png": a.out, "frames": panel.frames}))


def cmd_flowgraphs(a):
    """Open the shipped flowgraphs in GRC (under a display: xvfb-run), check how they read,
    and with ``pictures`` save GRC's screen capture of each."""
    from . import grc_view
    from pathlib import Path
    paths = [Path(n) if Path(n).is_file() else flowgraphs.find(n) for n in a.names] or flowgraphs.all_shipped()
    rep = grc_view.report(paths, a.out if a.action == "pictures" else None)
    bad = 0
    for row in rep["flowgraphs"]:
        ok = not row["problems"] and row.get("generated_matches_grcc")
        bad += not ok
        emit(f"{'ok  ' if ok else 'FAIL'} {row['flowgraph']}" + (f"  -> {row['png']}" if row.get("png") else ""))
        for p in row["problems"]:
            emit(f"       {p}")
        if not row.get("generated_matches_grcc", True):
            emit("       the Python GRC generates differs from grcc's")
    if a.json:
        emit(json.dumps(rep))
    return 1 if bad else 0
