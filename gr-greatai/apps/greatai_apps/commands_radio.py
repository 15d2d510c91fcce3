"""`greatai` commands about radios and recordings: simulate, capture, record, calibrate, listen."""
from __future__ import annotations

import json
import sys

import numpy as np

from .benchutil import emit


def cmd_simulate(a):
    from greatai import recording, sim
    if a.beams:
        return _simulate_beams(a)
    x, ann = sim.record(a.schedule, a.rate, a.seconds, (a.snr_min, a.snr_max), seed=a.seed, shuffle=a.shuffle)
    meta = recording.write_sigmf(a.out, x, a.rate, ann, description=f"greatai simulated radio: {a.schedule}",
                                 extra_global={"greatai:seed": a.seed})
    emit(json.dumps({"meta": str(meta), "samples": len(x), "annotations": len(ann)}))


def _simulate_beams(a):
    """A labelled ProtoBeam calibration sweep: SHOTS frames of every beam, one annotation each."""
    from greatai import recording
    from greatai.protobeam import demo, sim as bsim, waveforms
    parts, ann, off = [], [], 0
    for b, iq in demo.calibration_shots(a.front_end, a.position, a.shots, seed=a.seed):
        parts.append(iq.ravel())
        ann.append({"core:sample_start": off, "core:sample_count": iq.size, "core:label": f"B{b:02d}"})
        off += iq.size
    meta = recording.write_sigmf(a.out, np.concatenate(parts), a.rate, ann,
                                 description=f"greatai ProtoBeam calibration sweep: front end {a.front_end}, "
                                             f"position {a.position}, {a.shots} frames per beam",
                                 extra_global={"greatai:seed": a.seed, "greatai:front_end": a.front_end,
                                               "greatai:position": a.position, "greatai:frame_length": bsim.FRAME_LENGTH,
                                               "greatai:waveform": waveforms.DEFAULT})
    emit(json.dumps({"meta": str(meta), "samples": off, "annotations": len(ann)}))


def cmd_calibrate(a):
    """Calibrate ProtoBeam from a labelled recording: live over ZMQ, or into a file."""
    from greatai.protobeam.engine import ProtoBeamEngine
    from greatai.recording import labelled_frames, open_recording
    waveform = a.waveform or open_recording(a.recording).metadata.get("global", {}).get("greatai:waveform", "")
    eng = ProtoBeamEngine(a.model, threads=a.threads, waveform=waveform)
    parts = labelled_frames(a.recording, eng.frame_length)
    for label, _ in parts:
        eng.beam_index(label)                    # unknown labels fail before anything is sent
    if a.address:
        from gnuradio.greatai.control import CalibrationClient
        cli = CalibrationClient(a.address)
        if a.reset:
            cli.request("reset")
        for label, fr in parts:
            cli.shots(label, fr, replace=a.replace, waveform=eng.waveform_id)
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


def cmd_swap_model(a):
    """Ask a running flowgraph's model block to swap in another model, over ZMQ; with
    --answers, wait for its answer and print it."""
    import uuid
    from gnuradio.greatai.control import Answers, ModelClient
    from greatai.contract import ModelError
    rid = a.id or uuid.uuid4().hex[:12]
    answers = Answers(a.answers) if a.answers else None
    try:
        cli = ModelClient(a.address)
        cli.swap(a.model, rid, package=not a.path)
        cli.close()
    except (ModelError, ValueError, TimeoutError) as e:
        emit(f"greatai swap-model: {e}", file=sys.stderr)
        return 2
    if answers is None:
        emit(json.dumps({"sent": a.model, "id": rid, "address": a.address, "package": not a.path}))
        return 0
    reply = answers.wait("model", rid, a.timeout)
    answers.close()
    if reply is None:
        emit(f"greatai swap-model: no answer to request {rid} at {a.answers} within {a.timeout:g} s (is the "
             "block's model_status port connected to a zmq_result_sink there?)", file=sys.stderr)
        return 2
    emit(json.dumps(reply))
    return 0 if reply.get("ok") else 1


def cmd_capture(a):
    """Labelled SigMF from a radio, in the background with a progress bar."""
    from greatai import capture
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


def cmd_record(a):
    """The shipped amc_record flowgraph (radio -> early-exit AMC -> SigMF recorder), then
    what it recorded, read back (and so validated) from the file."""
    import collections
    import signal
    import subprocess
    from greatai import recording
    from . import flowgraphs
    if a.device not in ("sim", "pluto", "usrp", "file"):
        emit(f"greatai record: --device must be sim, pluto, usrp or file, not {a.device!r}", file=sys.stderr)
        return 2
    base = recording.base_path(a.out)
    meta_p = base.parent / (base.name + ".sigmf-meta")
    mtime = meta_p.stat().st_mtime_ns if meta_p.exists() else None
    fg = subprocess.Popen(flowgraphs.command("amc_record", "--out", base, "--device", a.device, "--address",
                                             a.address, "--freq", a.freq, "--samp-rate", a.rate, "--gain", a.gain,
                                             "--duration", a.seconds, "--annotate", a.annotate),
                          stdout=subprocess.DEVNULL if a.quiet else sys.stderr,
                          stderr=subprocess.DEVNULL if a.quiet else None,
                          start_new_session=True)     # a terminal's Ctrl-C reaches only this process ...
    try:
        rc = fg.wait()
    except KeyboardInterrupt:            # ... which passes it on once: the flowgraph stops and finishes the file
        fg.send_signal(signal.SIGINT)
        rc = fg.wait()
    if not meta_p.exists() or meta_p.stat().st_mtime_ns == mtime:
        emit(f"greatai record: nothing was recorded to {meta_p} (the flowgraph exited with {rc}; its log says why)",
             file=sys.stderr)
        return 2
    try:
        rec = recording.open_recording(meta_p)
    except recording.RecordingError as e:
        emit(f"greatai record: {e}", file=sys.stderr)
        return 2
    g = rec.metadata["global"]
    res = recording.annotation_results(rec.annotations)
    emit(json.dumps({"meta": str(meta_p), "samples": len(rec.samples), "seconds": round(len(rec.samples) / a.rate, 3),
                     "annotations": len(rec.annotations), "frames": len(res["start"]),
                     "exit1_share": round(float((res["exit"] == 1).mean()), 4) if len(res["exit"]) else None,
                     "labels": dict(sorted(collections.Counter(res["label"].tolist()).items())),
                     "complete": bool(g.get("greatai:complete")), "ended_early": g.get("greatai:ended_early")}))
    return 1 if g.get("greatai:ended_early") or rc not in (0, -signal.SIGINT) else 0


def cmd_listen(a):
    from greatai.results import dumps, subscribe
    try:
        for obj in subscribe(a.address, timeout=a.timeout, count=a.count, per_frame=a.frames):
            sys.stdout.write(dumps(obj) + "\n")
            sys.stdout.flush()
    except ValueError as e:
        emit(f"greatai listen: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
