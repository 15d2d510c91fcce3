"""The shipped flowgraphs as GNU Radio Companion shows them, through GRC's own GUI classes
(a display is needed: run under Xvfb, e.g. ``xvfb-run -a greatai flowgraphs check``).

For each flowgraph: load it as GRC's editor does, collect GRC's errors, draw it with
GRC's own label and block sizes, check the layout (no two blocks overlap, stream flow
left to right, variables and parameters above the signal blocks, no block wider than
``MAX_WIDTH``, a title and a description that says how to run it), generate its Python as GRC's Generate action
does and compare it with what ``grcc`` makes, and save GRC's screen capture as a PNG.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

MAX_WIDTH = 420                    # px at GRC's default zoom: wider blocks mean a long parameter is shown
TOP_KINDS = ("options", "variable", "parameter", "import", "epy_module")
# sources paced by the process that sends to them: GRC's "may not have flow control" warning
# (it looks for blocks flagged `throttle` only) does not apply to a flowgraph fed by one
PACED_BY_SENDER = ("zeromq_sub_source", "zeromq_pull_source")


def load_problems(console: str, path) -> list:
    """What GRC's console said while loading ``path`` that is not its plain progress."""
    head = f'Loading: "{path}"'
    if head not in console:
        return [f"GRC never loaded {path}"]
    chunk = console.split(head, 1)[1].split(">>> Done", 1)[0]
    return [f"GRC while loading: {ln.strip()}" for ln in chunk.splitlines() if ln.strip()]


def generation_problems(fg, messages) -> list:
    """GRC's warnings and errors while generating, less the flow-control warning where a
    source is paced by its sender."""
    paced = any(b.key in PACED_BY_SENDER for b in fg.get_enabled_blocks())
    return [f"GRC while generating: {m.strip()}" for m in messages
            if any(w in m.lower() for w in ("error", "warn", "fail"))
            and not (paced and "may not have flow control" in m)]


def platform():
    """GRC's GUI platform with its block library, as ``gnuradio-companion`` builds it."""
    import gi
    gi.require_version("Gtk", "3.0")
    gi.require_version("PangoCairo", "1.0")
    from gnuradio import gr
    from gnuradio.grc.gui.Platform import Platform
    p = Platform(version=gr.version(), version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()),
                 prefs=gr.prefs(), install_prefix=gr.prefix())
    p.build_library()
    return p


def in_grc(paths, inspect, settle: float = 1.5):
    """Start GNU Radio Companion itself (its Application and main window) with ``paths``
    open, and once it has drawn them call ``inspect(platform, pages, console)`` on its
    editor pages (``console``: GRC's console messages so far, a list that grows); then quit.  Returns (inspect's result, everything GRC wrote to its console)."""
    import traceback
    from gi.repository import GLib
    from gnuradio.grc.core import Messages
    console = []
    # GRC's console goes to ``console`` only (not also to stdout, where it would mix with
    # the command's own output); put back as it was afterwards
    saved = list(Messages.MESSENGERS_LIST)
    Messages.MESSENGERS_LIST[:] = [console.append]
    p = platform()
    from gnuradio.grc.gui.Application import Application
    app = Application([str(x) for x in paths], p)
    out = {}

    def go():
        try:
            out["result"] = inspect(p, app.main_window.get_pages(), console)
        except Exception:
            out["error"] = traceback.format_exc()
        finally:
            app.quit()
        return False
    GLib.timeout_add(int(settle * 1000), go)
    try:
        app.run()
    finally:
        Messages.MESSENGERS_LIST[:] = saved
    if "error" in out:
        raise RuntimeError("inspecting GRC's pages failed:\n" + out["error"])
    if "result" not in out:
        raise RuntimeError("GNU Radio Companion did not start (is there a display? run under xvfb-run)")
    return out["result"], "".join(console)


def show(window, page):
    """Bring a page to the front and let GTK draw it, as a user clicking its tab would."""
    from gi.repository import Gtk
    window._set_page(page)
    page.flow_graph.update()
    page.drawing_area.queue_draw()
    for _ in range(200):
        if not Gtk.events_pending():
            break
        Gtk.main_iteration_do(False)


def sized(fg):
    """Draw a flowgraph once off screen, so every block has GRC's own size."""
    import cairo
    fg.create_labels(cairo.Context(cairo.ImageSurface(cairo.FORMAT_ARGB32, 8, 8)))
    fg.create_shapes()
    fg.update_elements_to_draw()          # what GRC draws (a page not shown has not drawn yet)
    return fg


def boxes(fg) -> dict:
    """Block name -> (x0, y0, x1, y1) on the canvas: GRC's own extents of each block, its
    ports and their labels included."""
    return {b.name: tuple(b.get_extents()) for b in fg.blocks}


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def check(fg) -> list:
    """Problems with a loaded flowgraph, as sentences (empty: it reads well)."""
    problems = [f"GRC: {m}" for m in fg.get_error_messages()]
    bx = boxes(fg)
    names = sorted(bx)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if _overlap(bx[a], bx[b]):
                problems.append(f"blocks {a} and {b} overlap")
    for c in fg.connections:
        if c.source_port.domain != "stream":
            continue
        s, d = c.source_block.name, c.sink_block.name
        if bx[s][0] >= bx[d][0]:
            problems.append(f"stream {s} -> {d} runs right to left")
    top = [n for n in names if fg.get_block(n).key in TOP_KINDS]
    rest = [n for n in names if n not in top]
    if top and rest:
        lowest_top, highest_rest = max(bx[n][3] for n in top), min(bx[n][1] for n in rest)
        if lowest_top > highest_rest:
            problems.append(f"variables/parameters reach y={lowest_top:.0f}, below the first signal block "
                            f"(y={highest_rest:.0f}): group them at the top")
    for n in names:
        b = fg.get_block(n)
        w = b.width if b.is_horizontal() else b.height
        if w > MAX_WIDTH:
            problems.append(f"block {n} is {w:.0f} px wide: hide or shorten its long parameters")
    opts = fg.options_block
    for key in ("title", "description"):
        if not str(opts.params[key].get_value()).strip():
            problems.append(f"no {key} in the options block")
    if "run" not in str(opts.params["description"].get_value()).lower():
        problems.append("the description does not say how to run it")
    return problems


def screenshot(fg, png):
    """GRC's own screen capture of the flowgraph (Utils.make_screenshot), as PNG."""
    from gnuradio.grc.gui import Utils
    Utils.make_screenshot(fg, str(png), False)
    return Path(png)


def same_program(a: str, b: str) -> bool:
    """Two generated flowgraph programs are the same: equal text, except that GRC orders
    the connect() calls between the same two blocks as its sets iterate (it differs from
    run to run even for grcc alone), so runs of connect lines compare as sets."""
    def norm(text):
        out, run = [], []
        for line in text.splitlines() + [""]:
            if line.strip().startswith(("self.connect(", "self.msg_connect(")):
                run.append(line)
                continue
            out += sorted(run) + [line]
            run = []
        return out
    return norm(a) == norm(b)


def grcc(path, out_dir) -> Path:
    """The Python grcc makes of ``path`` (named after the flowgraph's id)."""
    subprocess.run(["grcc", "-o", str(out_dir), str(path)], check=True, capture_output=True, text=True)
    return next(Path(out_dir).glob("*.py"))


def report(paths, png_dir=None) -> dict:
    """Open every flowgraph in GRC at once; per flowgraph: problems, whether the Python
    GRC's Generate action writes equals grcc's, and the PNG of GRC's screen capture (if
    ``png_dir``).  Also GRC's console text."""
    paths = [Path(x).resolve() for x in paths]

    def inspect(p, pages, console):
        rows = []
        by_path = {Path(pg.file_path).resolve(): pg for pg in pages}
        for path in paths:
            page = by_path.get(path)
            if page is None:
                rows.append({"flowgraph": path.name, "problems": ["GRC did not open it"]})
                continue
            show(page.main_window, page)
            fg = sized(page.flow_graph)
            row = {"flowgraph": path.name, "problems": load_problems("".join(console), path) + check(fg)}
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                gen, seen = p.Generator(fg, a), len(console)
                gen.write()
                row["problems"] += generation_problems(fg, console[seen:])
                row["generated_matches_grcc"] = same_program(Path(gen.file_path).read_text(),
                                                             grcc(path, b).read_text())
            if png_dir:
                os.makedirs(png_dir, exist_ok=True)
                row["png"] = str(screenshot(fg, Path(png_dir) / (path.stem + ".png")))
            rows.append(row)
        return rows
    rows, console = in_grc(paths, inspect)
    return {"flowgraphs": rows, "console": console}
