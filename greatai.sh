#!/usr/bin/env bash
# gr-greatai: set everything up (idempotent, quick once done) and run a job.
#   ./greatai.sh demo [SECONDS] [--rate S/s]   headless early-exit AMC radio on the simulated source
#   ./greatai.sh test [PYTEST ARGS]   the whole test suite
#   ./greatai.sh env CMD ...      run CMD with the project's environment (e.g. greatai eval amc)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_PKGS="gnuradio gir1.2-gtk-3.0 g++ python3-venv python3-libiio python3-uhd python3-matplotlib python3-zmq python3-pyqtgraph python3-scipy cmake xvfb"
PY=/usr/bin/python3

log() { echo "[greatai] $*" >&2; }

setup() {
  # 1. GNU Radio 3.10 and friends from Debian (bindings exist for /usr/bin/python3 only)
  if ! command -v grcc >/dev/null || ! command -v cmake >/dev/null || \
     ! "$PY" -c 'import gnuradio.gr, gnuradio.zeromq, matplotlib, zmq, venv, uhd, iio' >/dev/null 2>&1 || \
     ! "$PY" -c 'import gi; gi.require_version("Gtk", "3.0")' >/dev/null 2>&1 || ! command -v g++ >/dev/null; then
    log "installing Debian packages: $APT_PKGS"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $APT_PKGS >/dev/null
  fi
  # 2. virtual environment on Debian's interpreter, seeing the system site packages
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv on $PY"
    "$PY" -m venv --system-site-packages .venv
  fi
  # 3. the project and its pins (numpy < 2 keeps GNU Radio importable)
  local stamp
  stamp="$(cat pyproject.toml | sha256sum | cut -c1-16)"
  if [ "$(cat .venv/.greatai-stamp 2>/dev/null)" != "$stamp" ]; then
    log "pip-installing the project into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[train,test]"
    echo "$stamp" > .venv/.greatai-stamp
  fi
  # 4. the OOT module, installed into a local prefix (GNU Radio's CMake package says where
  #    Python modules go for Debian's interpreter: build/gr_python_dir.txt)
  cmake -S . -B build -DCMAKE_INSTALL_PREFIX="$ROOT/.prefix" -DPYTHON_EXECUTABLE="$PY" \
        -DGREATAI_INSTALL_CORE=OFF >/dev/null
  cmake --install build >/dev/null
  export PATH="$ROOT/.venv/bin:$PATH"
  # the blocks from the prefix; the core library from the checkout (the same files as the
  # editable install), so that GRC and grcc, which run on /usr/bin/python3, import it too
  export PYTHONPATH="$ROOT/.prefix/$(cat build/gr_python_dir.txt):$ROOT/gr-greatai/pylib${PYTHONPATH:+:$PYTHONPATH}"
  export GRC_BLOCKS_PATH="$ROOT/.prefix/share/gnuradio/grc/blocks${GRC_BLOCKS_PATH:+:$GRC_BLOCKS_PATH}"
  export PYTHONUNBUFFERED=1
}

cmd="${1:-demo}"
shift || true
setup
case "$cmd" in
  demo)
    exec greatai demo amc "$@"
    ;;
  test)
    export QT_QPA_PLATFORM=offscreen
    # pyqtgraph's exit cleanup touches torch's deprecated reduce_op after pytest's summary
    # line (pytest's own filters are gone by then): keep the summary the last line
    export PYTHONWARNINGS="ignore::FutureWarning"
    if [ "$#" -gt 0 ]; then exec python -m pytest -q "$@"; fi
    # three tiers, each its own interpreter: unit (GNU Radio made unimportable), blocks, end to end
    rc=0
    for tier in unit blocks e2e; do
      log "test tier: $tier"
      python -m pytest -q "tests/$tier" || rc=1
    done
    exit $rc
    ;;
  env)
    exec "$@"
    ;;
  *)
    echo "usage: $0 {demo [SECONDS] [--rate S/s]|test [PYTEST ARGS]|env CMD...}" >&2
    exit 2
    ;;
esac
