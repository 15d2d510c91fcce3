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
    cmd = flowgraphs.command("amc_headless", "--duration", a.seconds)
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


def cmd_screenshot(a):
    from . import screenshot
    panel = getattr(screenshot, a.task)(a.out, seconds=a.seconds)
    emit(json.dumps({"png": a.out, "frames": panel.frames}))
