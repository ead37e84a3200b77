# SPDX-License-Identifier: LGPL-2.1-or-later
"""The study's training recipe in Python (torchvision), on a split given as JSON lines
(path, split, label: what `cxrscansrc ... ! cxrresultsink` writes), for side-by-side runs with
cxrtrain (tests/bench/bench_train.py).

Preprocessing as the study: offline once per scan (read as grey, F.equalize, F.gaussian_blur
kernel 5), then online Resize((size, size)), RandomHorizontalFlip, RandomAdjustSharpness(2),
RandomAutocontrast (train only), ToTensor, Normalize(mean, std), grey replicated to 3 channels.
Adam, CosineAnnealingLR(T_max=epochs, eta_min=lr_end) stepped per epoch, cross-entropy, best
weights by validation loss, test macro F1 with them. Prints one JSON object."""
import argparse
import copy
import json
import time

import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

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
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    rows = [json.loads(line) for line in open(a.split_jsonl)]
    rows = [r for r in rows if "error" not in r]
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
    train_tf = T.Compose([T.Resize((a.size, a.size)), T.RandomHorizontalFlip(), T.RandomAdjustSharpness(2),
                          T.RandomAutocontrast()] + norm)
    eval_tf = T.Compose([T.Resize((a.size, a.size))] + norm)
    loaders = {
        "train": torch.utils.data.DataLoader(Scans(data["train"], train_tf), batch_size=a.batch_size, shuffle=True,
                                             generator=torch.Generator().manual_seed(a.seed)),
        "val": torch.utils.data.DataLoader(Scans(data["val"], eval_tf), batch_size=a.batch_size),
        "test": torch.utils.data.DataLoader(Scans(data["test"], eval_tf), batch_size=a.batch_size),
    }
    model = ARCHS[a.arch](num_classes=len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs, eta_min=a.lr_end)
    loss_fn = torch.nn.CrossEntropyLoss()

    def evaluate(loader):
        model.eval()
        total, n, ys, ps = 0.0, 0, [], []
        with torch.no_grad():
            for x, y in loader:
                out = model(x)
                total += loss_fn(out, y).item() * len(y)
                n += len(y)
                ys += y.tolist()
                ps += out.argmax(1).tolist()
        return total / max(n, 1), ys, ps

    epochs, best, best_loss, best_epoch = [], None, float("inf"), -1
    for e in range(a.epochs):
        t = time.perf_counter()
        model.train()
        total, n = 0.0, 0
        for x, y in loaders["train"]:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            n += len(y)
        val_loss, ys, ps = evaluate(loaders["val"])
        lr = opt.param_groups[0]["lr"]
        sched.step()
        seconds = time.perf_counter() - t
        epochs.append({"epoch": e, "train_loss": total / n, "val_loss": val_loss,
                       "val_f1": f1_score(ys, ps, average="macro"), "lr": lr, "seconds": seconds})
        if val_loss < best_loss:
            best_loss, best_epoch, best = val_loss, e, copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    test_loss, ys, ps = evaluate(loaders["test"])
    print(json.dumps({"classes": classes, "offline_seconds": offline, "epochs": epochs, "best_epoch": best_epoch,
                      "test": {"n": len(ys), "loss": test_loss, "f1": f1_score(ys, ps, average="macro"),
                               "accuracy": accuracy_score(ys, ps),
                               "confusion": confusion_matrix(ys, ps, labels=range(len(classes))).tolist()}}))


if __name__ == "__main__":
    main()
