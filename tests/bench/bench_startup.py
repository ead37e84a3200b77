# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small job with the defaults, whole processes: what memory-format=auto costs a user.

48 Kermany scans ($CXR_SHARED_DATA/pneumonia, JPEG) through
  gst-launch-1.0 cxrscansrc ! cxrdecode ! cxrinfer model=CARD batch-size=8 threads=1 ! fakesink
on one core (taskset), for each architecture at 224 px, timed from process start to exit:
  - auto, cold cache: no layout remembered (a fresh CXR_LAYOUT_CACHE file): the layouts are timed
    on the stream's first batches;
  - auto, warm cache: the same file, now holding the choice the cold run made;
  - pinned: memory-format set to that choice (what a user who knew it would type);
  - torchvision eager, the same work in one Python process: PIL decode to grey, Resize((224, 224)),
    ToTensor, Normalize, grey to 3 channels, batches of 8, inference_mode, softmax.
Rounds are interleaved (cold, warm, pinned, torchvision, then again) and each keeps its best of
--rounds (3). Goals: torchvision / auto-cold >= 1.2 for every network; auto-warm within 0.3 s of
pinned. Exits 1 when a goal is missed. Options: --rounds N, --arch A (repeatable), --scans N.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

ARCHS = ["resnet34", "mobilenet_v3_large", "efficientnet_b1"]

TORCHVISION = r'''
import sys, time
t0 = time.perf_counter()
import torch, torchvision
import torchvision.transforms as T
from PIL import Image
torch.set_num_threads(1)
arch, weights, size, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
m = getattr(torchvision.models, arch)(num_classes=3)
m.load_state_dict(torch.load(weights))
m.eval()
tf = T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize([0.5], [0.25])])
with torch.inference_mode():
    for i in range(0, len(files), 8):
        x = torch.stack([tf(Image.open(f).convert("L")).repeat(3, 1, 1) for f in files[i:i + 8]])
        torch.softmax(m(x), 1)
'''


def timed(cmd, env=None):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... failed: {r.stderr.strip()[-400:]}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--arch", action="append")
    ap.add_argument("--scans", type=int, default=48)
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    archs = a.arch or ARCHS
    shared = os.environ.get("CXR_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                                                            "data"))
    files = sorted(glob.glob(os.path.join(shared, "pneumonia", "*", "*.jpeg")))[: a.scans]
    if len(files) < a.scans:
        sys.exit(f"{shared}/pneumonia: {len(files)} scans, need {a.scans}")
    python = os.environ.get("CXR_PYTHON", "/usr/bin/python3")
    one_core = ["taskset", "-c", str(min(os.sched_getaffinity(0)))]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "scans")
        os.makedirs(folder)
        for f in files:
            os.symlink(os.path.abspath(f), os.path.join(folder, os.path.basename(f)))
        print(f"{a.scans} scans at {a.size} px, batch 8, one core; seconds per whole process, best of {a.rounds}")
        print(f"{'network':20}{'auto cold':>11}{'auto warm':>11}{'pinned':>9}{'torchvision':>13}"
              f"{'tv/cold':>9}{'warm-pinned':>13}  layout")
        for arch in archs:
            weights = os.path.join(tmp, f"{arch}.pth")
            subprocess.run([python, "-c", f"import torch, torchvision; torch.save(torchvision.models.{arch}"
                            f"(num_classes=3).state_dict(), '{weights}')"], check=True)
            card = os.path.join(tmp, f"{arch}.toml")
            with open(card, "w") as f:
                f.write(f'[model]\narchitecture = "{arch}"\ntask = "multiclass"\nclasses = ["a", "b", "c"]\n'
                        f'weights = "{weights}"\n[input]\nsize = [{a.size}, {a.size}]\nmean = 0.5\nstd = 0.25\n')
            cache = os.path.join(tmp, f"{arch}-layouts.tsv")
            env = dict(os.environ, CXR_LAYOUT_CACHE=cache, OMP_NUM_THREADS="1")
            line = ["gst-launch-1.0", "-q", "cxrscansrc", f"location={folder}", "!", "cxrdecode", "!", "cxrinfer",
                    f"model={card}", "batch-size=8", "threads=1"]
            best = {"cold": 1e9, "warm": 1e9, "pinned": 1e9, "torchvision": 1e9}
            layout = None
            for _ in range(a.rounds):
                if os.path.exists(cache):
                    os.remove(cache)
                best["cold"] = min(best["cold"], timed(one_core + line + ["!", "fakesink"], env))
                if not os.path.exists(cache):
                    raise RuntimeError(f"{arch}: the cold run remembered no layout in {cache}")
                chosen = open(cache).read().split("\t")[2]
                if layout not in (None, chosen):
                    print(f"  ({arch}: the cold runs chose {layout} and {chosen})")
                layout = chosen
                best["warm"] = min(best["warm"], timed(one_core + line + ["!", "fakesink"], env))
                best["pinned"] = min(best["pinned"], timed(one_core + line + [f"memory-format={chosen}", "!",
                                                                              "fakesink"], env))
                best["torchvision"] = min(best["torchvision"], timed(
                    one_core + [python, "-c", TORCHVISION, arch, weights, str(a.size)] + files, env))
            ratio = best["torchvision"] / best["cold"]
            gap = best["warm"] - best["pinned"]
            print(f"{arch:20}{best['cold']:11.2f}{best['warm']:11.2f}{best['pinned']:9.2f}"
                  f"{best['torchvision']:13.2f}{ratio:9.2f}{gap:13.2f}  {layout}")
            if ratio < 1.2:
                print(f"GOAL MISSED: {arch}: auto with a cold cache is {ratio:.2f}x torchvision (goal 1.2x)")
                ok = False
            if gap > 0.3:
                print(f"GOAL MISSED: {arch}: auto with a warm cache is {gap:.2f} s behind the pinned layout")
                ok = False
    print("All goals met" if ok else "Goals missed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
