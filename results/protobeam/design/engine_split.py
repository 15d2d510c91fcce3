# One-off design script (issue 13): where ProtoBeamEngine.embed's time goes per frame (512-frame batches of
# 1024-sample frames, the shipped model, one ONNX Runtime thread): the numpy channel-estimate front, the frame
# checks and the encoder, each alone, and embed() whole. It bounds any encoder compression's speed-up.
# Last, the front and the encoder run on smaller chunks of the same frames.
# Run from the repository root with  ./greatai.sh env python results/protobeam/design/engine_split.py
# Output: engine_split.log.
import sys, json, time, numpy as np
sys.path.insert(0, "gr-greatai/apps")
from greatai_apps.benchutil import machine
from greatai.protobeam import engine as E
print(json.dumps(machine()))
eng = E.ProtoBeamEngine()
rng = np.random.default_rng(0)
x = (rng.standard_normal((512, eng.frame_length)) + 1j * rng.standard_normal((512, eng.frame_length))).astype(np.complex64)
feats = eng.front(x)
def us(f, n=20):
    f(); best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n): f()
        best = min(best, (time.perf_counter() - t) / n)
    return round(best / len(x) * 1e6, 1)
row = {"front": us(lambda: eng.front(x)), "frame_status": us(lambda: E.framing.frame_status(x)),
       "encoder": us(lambda: eng.session.run(None, {"features": feats})), "embed": us(lambda: eng.embed(x))}
row["encoder_share_of_embed"] = round(row["encoder"] / row["embed"], 3)
row["speedup_bound_free_encoder"] = round(row["embed"] / (row["embed"] - row["encoder"]), 2)
print("us/frame", json.dumps(row))
# the same work (front, then encoder) in smaller pieces of the 512 frames: the working set of a 512-frame batch
# (4 MB of IQ and the front's temporaries) does not stay in cache between the front and the encoder
for c in (32, 128, 256, 512):
    print(f"front + encoder in chunks of {c} frames: "
          f"{us(lambda: [eng.session.run(None, {'features': eng.front(x[i:i + c])}) for i in range(0, len(x), c)])} us/frame")
