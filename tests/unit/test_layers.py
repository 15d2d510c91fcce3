"""The three layers point one way: the core library (pylib) imports neither GNU Radio nor
PMT nor the blocks nor the apps; the blocks never import the apps; nothing imports in a
cycle; and the ML blocks stay thin."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYLIB = ROOT / "gr-greatai" / "pylib"
BLOCKS = ROOT / "gr-greatai" / "python" / "greatai"
APPS = ROOT / "gr-greatai" / "apps"


def imports(path: Path, package: str) -> set:
    """Every module a file imports (anywhere in it, function bodies too), absolute names."""
    tree = ast.parse(path.read_text())
    mod = package.split(".")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod[:len(mod) - node.level + (1 if path.name == "__init__.py" else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            out.add(name)
            out |= {f"{name}.{a.name}" for a in node.names}
    return out


def modules(root: Path):
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), p


def test_core_library_imports_no_gnuradio_pmt_blocks_or_apps():
    bad = {}
    for name, p in modules(PYLIB):
        found = {i for i in imports(p, name) if i.split(".")[0] in ("gnuradio", "pmt", "greatai_apps")}
        if found:
            bad[name] = sorted(found)
    assert not bad, bad


def test_blocks_never_import_the_apps():
    bad = {p.name: sorted(i for i in imports(p, "gnuradio.greatai." + p.stem) if i.startswith("greatai_apps"))
           for p in BLOCKS.glob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_no_import_cycles_in_the_core_library():
    names = dict(modules(PYLIB))
    graph = {n: {i for i in imports(p, n) if i in names and i != n} for n, p in names.items()}
    # a package's own __init__ is not a dependency of its modules
    graph = {n: {d for d in deps if not n.startswith(d + ".")} for n, deps in graph.items()}
    state, cycle = {}, []

    def visit(n, path):
        if state.get(n) == 1:
            cycle.append(path[path.index(n):] + [n])
            return
        if state.get(n) == 2:
            return
        state[n] = 1
        for d in sorted(graph[n]):
            visit(d, path + [n])
        state[n] = 2
    for n in sorted(graph):
        visit(n, [])
    assert not cycle, cycle[0]


def test_every_core_module_imports_with_gnuradio_and_pmt_unimportable():
    """In a fresh interpreter where `import gnuradio` and `import pmt` fail."""
    names = [n for n, _ in modules(PYLIB) if not n.startswith("greatai.gui")]   # the Qt panels need PyQt5 only
    code = f"""
import importlib, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('gnuradio', 'pmt'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
for n in {names!r}:
    importlib.import_module(n)
assert not [m for m in sys.modules if m.split('.')[0] in ('gnuradio', 'pmt')]
print(len({names!r}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(PYLIB), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.strip()) == len(names) > 20


def test_ml_blocks_are_thin():
    import ast
    for name in ("amc_classifier", "protobeam", "spectrogram_forecaster", "spectrogram_segmenter"):
        text = (BLOCKS / f"{name}.py").read_text()
        doc = set()                  # docstrings document the block's parameters and ports: not logic
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant) \
                    and isinstance(node.value.value, str):
                doc.update(range(node.lineno, node.end_lineno + 1))
        n = sum(1 for i, line in enumerate(text.splitlines(), 1) if line.strip() and i not in doc)
        assert n <= 100, f"{name}.py has {n} lines of code: its logic belongs in the core library"
