"""The running scoreboard behind result_summary."""
from greatai.summary import Scoreboard


def test_scoreboard_scores_each_result_against_the_truth_in_force():
    """Truth at a result's own offset applies to it; results before any truth are counted
    but not scored; INVALID frames are not scored; stretches carry the truth on."""
    b = Scoreboard()
    b.update([0, 10, 20, 30], ["QPSK", "QPSK", "BPSK", "INVALID"], [1, 2, 1, 0],
             truth_offsets=[10, 25], truth_labels=["QPSK", "BPSK"])
    b.update([40, 50], ["BPSK", "QPSK"], [1, 1])
    b.update([], [], [], [55], ["QPSK"])
    b.update([60], ["QPSK"], [2])
    s = b.summary(1.0)
    assert s["frames"] == 7 and s["counts"] == {"BPSK": 2, "INVALID": 1, "QPSK": 4}
    # scored: 10 QPSK/QPSK ok, 20 BPSK/QPSK wrong, 40 BPSK/BPSK ok, 50 QPSK/BPSK wrong, 60 QPSK/QPSK ok
    assert s["scored"] == 5 and s["accuracy"] == 0.6
    assert s["accuracy_per_truth"] == {"BPSK": 0.5, "QPSK": round(2 / 3, 4)}
    assert s["exit1_share"] == round(4 / 6, 4)
