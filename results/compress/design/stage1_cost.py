# One-off design script (issue 13): where the AMC stage 1's time goes, raw ONNX Runtime, one thread.
# (1) us/frame of the float and the shipped structured+int8 stage 1 at batch sizes 8..512;
# (2) ONNX Runtime's own profile of the float stage 1 by operator, batch 128.
# Run from the repository root with  ./greatai.sh env python results/compress/design/stage1_cost.py
# Output: stage1_cost.log.
import sys, os, json, time, collections, numpy as np, onnxruntime as ort
sys.path.insert(0, "gr-greatai/apps")
from greatai_apps.benchutil import machine
print(json.dumps(machine()))
rng = np.random.default_rng(0)
x = rng.standard_normal((512, 1024, 2)).astype(np.float32)
def session(path, profile=False):
    so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
    so.enable_profiling = profile
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
for name in ["amc_ee", "amc_ee_structured_int8"]:
    s = session(f"models/{name}/stage1.onnx")
    row = {}
    for B in [8, 16, 32, 64, 128, 512]:
        for _ in range(3):
            for i in range(0, 512, B): s.run(None, {"iq": x[i:i + B]})
        best = 1e9
        for _ in range(5):
            t = time.perf_counter()
            for i in range(0, 512, B): s.run(None, {"iq": x[i:i + B]})
            best = min(best, time.perf_counter() - t)
        row[B] = round(best / 512 * 1e6, 1)
    print(name, "us/frame by batch", json.dumps(row), flush=True)
s = session("models/amc_ee/stage1.onnx", profile=True)
for _ in range(40): s.run(None, {"iq": x[:128]})
f = s.end_profiling()
agg, n = collections.Counter(), collections.Counter()
for e in json.load(open(f)):
    if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
        agg[e["args"]["op_name"]] += e["dur"]; n[e["args"]["op_name"]] += 1
os.remove(f)
tot = sum(agg.values())
print(f"amc_ee stage 1 profile, batch 128: {tot / 40 / 128:.1f} us/frame in its nodes")
for k, v in agg.most_common(12):
    print(f"  {k:12s} {v / 40 / 128:6.2f} us/frame {100 * v / tot:5.1f} %  ({n[k] // 40} nodes)")
