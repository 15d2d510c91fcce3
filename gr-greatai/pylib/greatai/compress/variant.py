"""The metadata every compressed variant shares, whatever its task (no GNU Radio).

:func:`describe` fills a variant's ``model.json`` fields from its source: the name, the
description, the files (the compressed ONNX graphs, and any other file of the source,
copied as it is), the cost of both models (:mod:`.cost`, the ITU-ML5G-PS-007 score
against the source) and the record of what was done, with the source's name, relative
directory and checksums.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .. import contract
from . import cost


def describe(src, meta: dict, out, roles, record: dict, suffix: str) -> dict:
    """Fill ``meta`` (a copy of the source's metadata) for the variant in ``out`` whose
    ``roles`` are compressed ONNX graphs at ``out/<role>.onnx``; the source's other files are
    copied.  Returns ``meta``."""
    out = Path(out)
    files = {}
    for role, entry in src.meta["files"].items():
        if role in roles:
            files[role] = contract.file_entry(out / f"{role}.onnx")
        else:
            dst = out / Path(entry["path"]).name
            shutil.copyfile(src.file(role), dst)
            files[role] = contract.file_entry(dst)
    c_float = cost.of_model(src, roles)
    bits = record.get("qat") or {}           # QAT's widths below 8 are stored in int8: the record says them
    c_new = cost.combine({r: cost.account(out / f"{r}.onnx", weight_bits=bits.get("weight_bits"),
                                          act_bits=bits.get("act_bits")) for r in roles})
    c_new["score_vs_float"] = round(cost.score(c_new, c_float), 5)
    c_float["score_vs_float"] = 1.0
    meta["name"] = f"{src.name}_{suffix}"      # the default output directory's name
    meta["description"] = f"{src.meta.get('description', '')}, {record['method']} of {src.name}"
    meta["files"] = files
    record["source"] = dict(record.get("source", {}), name=src.name,
                            dir=os.path.relpath(src.dir.resolve(), out.resolve()),
                            files={r: src.sha256(r) for r in roles})
    meta["compression"] = record
    meta["cost"] = {"float": c_float, "compressed": c_new}
    return meta
