"""The live-calibration demo's client side (no GNU Radio): score JSON results in phases.

``greatai demo protobeam`` runs ``flowgraphs/protobeam_headless.grc`` and this client:
it reads the block's JSON results over ZMQ, waits for the front end to change, measures
accuracy uncalibrated, sends a calibration (k labelled frames per beam of the new front
end, as PDUs over ZMQ), waits for the block's acknowledgements, and measures again.
"""
from __future__ import annotations

import time

import numpy as np

from . import sim

PHASES = ("before change (calibrated)", "after change, old calibration", "after recalibration")


class PhaseScore:
    """Accuracy of results (dicts with label, truth, sim_front_end) per phase of the demo.

    ``stage`` is advanced by the driver: 0 = start front end being calibrated, 1 = it is
    calibrated, 2 = recalibration for the new front end sent.  Acknowledgements (dicts with
    ``event``) are counted; results of a phase count once that phase's calibration is
    acknowledged and ``settle`` more results have passed (those in flight).
    """

    def __init__(self, start_front_end: int, n_beams: int = sim.N_BEAMS, settle: int = 64):
        self.start = int(start_front_end)
        self.n_beams = n_beams
        self.settle = settle
        self.frames = {p: 0 for p in PHASES}
        self.correct = {p: 0 for p in PHASES}
        self.acks = []
        self.new_front_end = None
        self.stage = 0
        self._since_ack = 0

    def acked(self, stage: int) -> bool:
        ok = sum(1 for a in self.acks if a.get("ok") and a.get("event") == "pdu")
        return ok >= stage * self.n_beams

    def phase(self, r: dict):
        fe = r.get("sim_front_end")
        if fe is None or "truth" not in r:
            return None
        if int(fe) == self.start:
            return PHASES[0] if self.stage >= 1 and self._since_ack > self.settle else None
        self.new_front_end = int(fe)
        if self.stage == 1:
            return PHASES[1]
        if self.stage == 2 and self.acked(2) and self._since_ack > self.settle:
            return PHASES[2]
        return None

    def feed(self, r: dict):
        if "event" in r:
            self.acks.append(r)
            self._since_ack = 0
            return
        self._since_ack += 1
        p = self.phase(r)
        if p is not None:
            self.frames[p] += 1
            self.correct[p] += int(r.get("label") == r.get("truth"))

    def accuracy(self, p):
        return round(100 * self.correct[p] / self.frames[p], 2) if self.frames[p] else None

    def table(self) -> list:
        return [{"phase": p, "frames": self.frames[p], "accuracy": self.accuracy(p)} for p in PHASES]


def calibration_shots(front_end: int, position: int, shots: int, seed: int = 99):
    """k labelled frames per beam of a front end at a position (a cooperative beam sweep)."""
    beams = np.repeat(np.arange(sim.N_BEAMS), shots)
    x, _ = sim.generate(np.random.default_rng(seed), sim.front_end(front_end), beams,
                        positions=np.full(len(beams), position))
    return [(b, x[b * shots:(b + 1) * shots]) for b in range(sim.N_BEAMS)]


def run(results, send_shots, start_front_end=0, position=0, shots=8, frames_per_phase=1500, timeout=60.0,
        log=lambda s: None):
    """Drive the demo. results: iterator of result dicts; send_shots(beam, iq, replace): one PDU.

    1. calibrate the start front end (the radio as installed) and score it;
    2. when the front end changes, score it on the old calibration;
    3. after ``frames_per_phase`` frames, recalibrate (replacing the old shots) and score again.
    Returns the PhaseScore (``table()`` has the three accuracies)."""
    score = PhaseScore(start_front_end)
    t0 = time.monotonic()
    sent = False
    for r in results:
        if not sent:
            # the first result proves the subscription is live (ZMQ PUB drops what is sent before a
            # subscriber joins), so the acknowledgements of this calibration will be seen
            for b, iq in calibration_shots(start_front_end, position, shots):
                send_shots(b, iq, True)
            sent = True
            continue
        score.feed(r)
        if score.stage == 0 and score.acked(1):
            score.stage = 1
            log(f"front end {start_front_end} calibrated ({shots} shots x {sim.N_BEAMS} beams)")
        if score.stage == 1 and score.frames[PHASES[1]] >= frames_per_phase:
            log(f"front end changed to {score.new_front_end}: accuracy {score.accuracy(PHASES[1])} % on the old "
                f"calibration ({score.accuracy(PHASES[0])} % before); recalibrating with {shots} shots x "
                f"{sim.N_BEAMS} beams over ZMQ")
            for b, iq in calibration_shots(score.new_front_end, position, shots, seed=100):
                send_shots(b, iq, True)
            score.stage = 2
        if score.stage == 2 and score.frames[PHASES[2]] >= frames_per_phase:
            break
        if time.monotonic() - t0 > timeout:
            log("timed out")
            break
    return score
