"""Every block's GRC documentation tab lists its parameters and ports and names a shipped
example flowgraph that uses it (read as plain YAML: no GNU Radio needed)."""
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
YMLS = sorted((ROOT / "gr-greatai" / "grc").glob("*.block.yml"))
EXAMPLES = {p.name for p in (ROOT / "flowgraphs").glob("*.grc")}


@pytest.mark.parametrize("path", YMLS, ids=lambda p: p.name)
def test_documentation_tab_gives_parameters_ports_and_an_example(path):
    d = yaml.safe_load(path.read_text())
    doc = d["documentation"]
    ref = doc.split("Reference (parameters, ports, examples):", 1)[1]
    for p in d.get("parameters", []):
        assert f"- {p['label']} ({p['id']}," in ref, p["id"]
    for p in d.get("inputs", []) + d.get("outputs", []):
        assert f"- {p.get('id') or p.get('label')} (" in ref
    names = [w.strip(" ,.") for w in ref.split("Example flowgraphs:", 1)[1].split()]
    assert EXAMPLES & set(names), "no shipped example named"


def test_long_parameters_are_hidden_from_the_block_label():
    """Schedules and other long defaults must not stretch a block across the canvas."""
    for path in YMLS:
        for p in yaml.safe_load(path.read_text()).get("parameters", []):
            if len(str(p.get("default", ""))) > 60:
                assert "part" in str(p.get("hide", "")) or "all" in str(p.get("hide", "")), (path.name, p["id"])
