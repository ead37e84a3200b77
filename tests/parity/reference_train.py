# SPDX-License-Identifier: LGPL-2.1-or-later
"""The study's training recipe in Python (torchvision), on a split given as JSON lines
(path, split, label: what `cxrscansrc ... ! cxrresultsink` writes), for side-by-side runs with
cxrtrain (tests/bench/bench_train.py).

Preprocessing as the study: offline once per scan (read as grey, F.equalize, F.gaussian_blur
kernel 5), then online Resize((size, size)), RandomHorizontalFlip, RandomAdjustSharpness(2),
RandomAutocontrast (train only), ToTensor, Normalize(mean, std), grey replicated to 3 channels.
Adam, CosineAnnealingLR(T_max=epochs, eta_min=lr_end) stepped per epoch, cross-entropy, best
weights by validation loss, test macro F1 with them. Prints one JSON object.

`--resize shorter` resizes the shorter side (T.Resize(size)) as train-pneumonia.toml does,
`--workers N` loads batches in N DataLoader processes as the study's notebooks did, and `--out DIR`
writes metrics.jsonl (a row per epoch, as it goes), summary.json and test_predictions.csv there,
and resume.pt after each epoch: run the same command again to continue an interrupted run.
Each epoch row splits its seconds into waiting for data, forward, backward and optimizer step."""
import argparse
import copy
import json
import os
import time

import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

ARCHS = {"resnet34": torchvision.models.resnet34, "mobilenet_v3_large": torchvision.models.mobilenet_v3_large,
         "efficientnet_b1": torchvision.models.efficientnet_b1}


class Scans(torch.utils.data.Dataset):
    def __init__(self, items, transform):
        self.items, self.transform = items, transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        img, label = self.items[i]
        return self.transform(img).repeat(3, 1, 1), label


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("split_jsonl")
    ap.add_argument("--arch", default="mobilenet_v3_large")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--lr-end", type=float, default=0.001)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--mean", type=float, default=0.4810)
    ap.add_argument("--std", type=float, default=0.2373)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--resize", choices=["stretch", "shorter"], default="stretch")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    rows = [json.loads(line) for line in open(a.split_jsonl)]
    rows = [r for r in rows if "error" not in r and r.get("split") in ("train", "val", "test")]
    classes = sorted({r["label"] for r in rows})
    # Offline preprocessing, once per scan (not part of the epoch times).
    t0 = time.perf_counter()
    data = {"train": [], "val": [], "test": []}
    for r in rows:
        img = Image.open(r["path"]).convert("L")
        img = F.gaussian_blur(F.equalize(img), 5)
        data[r["split"]].append((img, classes.index(r["label"])))
    offline = time.perf_counter() - t0

    norm = [T.ToTensor(), T.Normalize([a.mean], [a.std])]
    resize = T.Resize((a.size, a.size)) if a.resize == "stretch" else T.Resize(a.size)
    train_tf = T.Compose([resize, T.RandomHorizontalFlip(), T.RandomAdjustSharpness(2), T.RandomAutocontrast()] + norm)
    eval_tf = T.Compose([resize] + norm)
    workers = {"num_workers": a.workers, "persistent_workers": a.workers > 0}
    loaders = {
        "train": torch.utils.data.DataLoader(Scans(data["train"], train_tf), batch_size=a.batch_size, shuffle=True,
                                             generator=torch.Generator().manual_seed(a.seed), **workers),
        "val": torch.utils.data.DataLoader(Scans(data["val"], eval_tf), batch_size=a.batch_size, **workers),
        "test": torch.utils.data.DataLoader(Scans(data["test"], eval_tf), batch_size=a.batch_size),
    }
    model = ARCHS[a.arch](num_classes=len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs, eta_min=a.lr_end)
    loss_fn = torch.nn.CrossEntropyLoss()

    def evaluate(loader):
        model.eval()
        total, n, ys, ps, probs = 0.0, 0, [], [], []
        with torch.no_grad():
            for x, y in loader:
                out = model(x)
                total += loss_fn(out, y).item() * len(y)
                n += len(y)
                ys += y.tolist()
                ps += out.argmax(1).tolist()
                probs += out.softmax(1).tolist()
        return total / max(n, 1), ys, ps, probs

    def write(name, text):
        if a.out:
            with open(os.path.join(a.out, name), "w") as f:
                f.write(text)

    epochs, best, best_loss, best_epoch, start = [], None, float("inf"), -1, 0
    resume = os.path.join(a.out, "resume.pt") if a.out else ""
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        if os.path.exists(resume):
            # The state after the last complete epoch: weights, optimizer, schedule, RNG, the
            # shuffling generator, the best so far; the loader is re-made, as a restarted
            # notebook would.
            r = torch.load(resume)
            model.load_state_dict(r["model"])
            opt.load_state_dict(r["opt"])
            sched.load_state_dict(r["sched"])
            torch.set_rng_state(r["rng"])
            loaders["train"].generator.set_state(r["shuffle"])
            epochs, best, best_loss, best_epoch = r["epochs"], r["best"], r["best_loss"], r["best_epoch"]
            start = len(epochs)
        write("metrics.jsonl", "".join(json.dumps(row) + "\n" for row in epochs))

    for e in range(start, a.epochs):
        t = time.perf_counter()
        model.train()
        total, n, tys, tps = 0.0, 0, [], []
        split = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        mark = time.perf_counter()
        for x, y in loaders["train"]:
            now = time.perf_counter()
            split["data"] += now - mark
            opt.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            mark = time.perf_counter()
            split["forward"] += mark - now
            loss.backward()
            now = time.perf_counter()
            split["backward"] += now - mark
            opt.step()
            mark = time.perf_counter()
            split["optimizer"] += mark - now
            total += loss.item() * len(y)
            n += len(y)
            tys += y.tolist()
            tps += out.argmax(1).tolist()
        train_seconds = time.perf_counter() - t
        val_loss, ys, ps, _ = evaluate(loaders["val"])
        lr = opt.param_groups[0]["lr"]
        sched.step()
        seconds = time.perf_counter() - t
        epochs.append({"epoch": e, "train_loss": total / n, "train_f1": f1_score(tys, tps, average="macro"),
                       "val_loss": val_loss, "val_f1": f1_score(ys, ps, average="macro"),
                       "val_accuracy": accuracy_score(ys, ps), "lr": lr, "seconds": seconds,
                       "train_seconds": train_seconds, "split_seconds": split})
        if a.out:
            with open(os.path.join(a.out, "metrics.jsonl"), "a") as f:
                f.write(json.dumps(epochs[-1]) + "\n")
        if val_loss < best_loss:
            best_loss, best_epoch, best = val_loss, e, copy.deepcopy(model.state_dict())
        if resume:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": torch.get_rng_state(), "shuffle": loaders["train"].generator.get_state(),
                        "epochs": epochs, "best": best, "best_loss": best_loss, "best_epoch": best_epoch},
                       resume + ".part")
            os.replace(resume + ".part", resume)
    model.load_state_dict(best)
    test_loss, ys, ps, probs = evaluate(loaders["test"])
    try:
        auroc = roc_auc_score(ys, probs, multi_class="ovr", average="macro")
    except ValueError:
        auroc = float("nan")
    test_paths = [r["path"] for r in rows if r["split"] == "test"]
    write("test_predictions.csv", "path,truth,predicted," + ",".join("prob_" + c for c in classes) + "\n" + "".join(
        f"{p},{classes[y]},{classes[q]}," + ",".join(f"{v:.6g}" for v in pr) + "\n"
        for p, y, q, pr in zip(test_paths, ys, ps, probs)))
    result = {"classes": classes, "offline_seconds": offline, "epochs": epochs, "best_epoch": best_epoch,
              "test": {"n": len(ys), "loss": test_loss, "f1": f1_score(ys, ps, average="macro"),
                       "accuracy": accuracy_score(ys, ps), "auroc": auroc,
                       "per_class_f1": f1_score(ys, ps, average=None, labels=range(len(classes))).tolist(),
                       "confusion": confusion_matrix(ys, ps, labels=range(len(classes))).tolist()}}
    write("summary.json", json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))

if __name__ == "__main__":
    main()
