"""GNU Radio Companion as a user opens it, under Xvfb: it starts, loads every shipped
flowgraph without an error or a warning, the flowgraphs read well (GRC's own block sizes),
and the Python GRC generates is what grcc makes.  These tests fail if GRC cannot start."""
import json
import re
import subprocess
import sys

import pytest

XVFB = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"]


def last_json(stdout: str, why: str = "") -> dict:
    """The command's JSON report: its last line that is a JSON object (a line GRC or GTK
    prints late must not hide it)."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON report in the output:\n{stdout[-3000:]}\n{why}"
    return json.loads(lines[-1])


def in_grc(args, env):
    """``greatai ARGS`` under Xvfb: (the finished process, its JSON report).  A run that
    printed nothing at all (the X server or GTK did not come up: seen once in CI, with no
    output to read) is run once more; its exit status and stderr go into the message if
    the second run fails too."""
    why = ""
    for _ in range(2):
        r = subprocess.run(XVFB + [sys.executable, "-m", "greatai_apps.cli", *args], capture_output=True, text=True,
                           timeout=300, env=env)
        if r.stdout.strip():
            break
        why += f"[a run with no output: exit {r.returncode}, stderr: {r.stderr[-1500:]}]\n"
    return r, last_json(r.stdout, why)


@pytest.fixture(scope="module")
def flowgraph_paths(root):
    return sorted((root / "flowgraphs").glob("*.grc"))


@pytest.fixture
def grc_env(tmp_path):
    import os
    return dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))


def test_gnuradio_companion_starts_and_loads_every_flowgraph_cleanly(flowgraph_paths, grc_env):
    """The real `gnuradio-companion` with every shipped flowgraph open; its console must
    show each one loading and nothing else."""
    cmd = XVFB + ["timeout", "-s", "TERM", "25", "gnuradio-companion", *map(str, flowgraph_paths)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=grc_env)
    out = r.stdout + r.stderr
    assert "Welcome to GNU Radio Companion" in out, out[-3000:]
    assert r.returncode == 124, f"GRC exited by itself ({r.returncode}) instead of running:\n{out[-3000:]}"
    for p in flowgraph_paths:
        m = re.search(re.escape(f'Loading: "{p}"') + r"\n(.*?)>>> Done", out, re.S)
        assert m, f"GRC did not load {p.name}:\n{out[-3000:]}"
        assert not m.group(1).strip(), f"GRC said while loading {p.name}: {m.group(1)}"
    bad = [ln for ln in out.splitlines() if re.search(r"error|warning|traceback|failed", ln, re.I)]
    assert not bad, bad


def test_flowgraphs_read_well_in_grc_and_generate_what_grcc_makes(flowgraph_paths, grc_env, tmp_path):
    """`greatai flowgraphs pictures`: inside GRC, no GRC errors, no overlapping blocks
    (GRC's own extents), stream flow left to right, variables and parameters on top, no
    block over-wide from a long parameter, a title and a description, GRC's generated
    Python equal to grcc's; and GRC's screen capture of each as a PNG."""
    out = tmp_path / "png"
    r, rep = in_grc(["flowgraphs", "pictures", "--out", str(out), "--json"], grc_env)
    rows = {x["flowgraph"]: x for x in rep["flowgraphs"]}
    assert set(rows) == {p.name for p in flowgraph_paths}
    for name, row in rows.items():
        assert row["problems"] == [], (name, row["problems"])
        assert row["generated_matches_grcc"], name
        assert (out / (name[:-4] + ".png")).stat().st_size > 10000
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_the_layout_check_can_fail(grc_env, tmp_path, root):
    """A flowgraph with two blocks on top of each other, a stream running right to left, a
    variable below the signal blocks and no description is reported on each count."""
    import yaml
    doc = yaml.safe_load((root / "flowgraphs" / "amc_headless.grc").read_text())
    blocks = {b["name"]: b for b in doc["blocks"]}
    blocks["blocks_throttle_0"]["states"]["coordinate"] = blocks["greatai_sim_source_0"]["states"]["coordinate"]
    blocks["greatai_result_summary_0"]["states"]["coordinate"] = [8, 400]
    blocks["samp_rate"]["states"]["coordinate"] = [900, 900]
    doc["options"]["parameters"]["description"] = ""
    bad = tmp_path / "bad.grc"
    bad.write_text(yaml.safe_dump(doc))
    r, rep = in_grc(["flowgraphs", "check", str(bad), "--json"], grc_env)
    assert r.returncode == 1
    problems = " | ".join(rep["flowgraphs"][0]["problems"])
    for text in ("blocks_throttle_0 and greatai_sim_source_0 overlap", "runs right to left",
                 "group them at the top", "no description"):
        assert text in problems, (text, problems)
