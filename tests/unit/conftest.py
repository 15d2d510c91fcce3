"""The unit tier: the core library alone, with GNU Radio and PMT made unimportable, as on
a machine without GNU Radio (``./greatai.sh test`` runs this tier in its own interpreter).
When this directory is collected together with the other tiers, nothing is blocked."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLOCKED = ("gnuradio", "pmt")


class NoGnuRadio:
    """A meta-path finder that refuses GNU Radio's packages."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not importable in the unit tier (the core library must not need it)")
        return None


def pytest_configure(config):
    paths = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    if paths and all(p == HERE or HERE in p.parents for p in paths):
        for mod in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
            del sys.modules[mod]
        sys.meta_path.insert(0, NoGnuRadio())
