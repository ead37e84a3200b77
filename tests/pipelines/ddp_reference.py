# SPDX-License-Identifier: LGPL-2.1-or-later
"""PyTorch's own DistributedDataParallel on Gloo, as the reference for `cxr run --nproc N`
without SyncBatchNorm: N processes on 127.0.0.1, each fed the frames its rank's cxrscansrc
emitted (the PNGs cxrresultsink saved, in the order of its JSON lines), one epoch of SGD with
momentum on torchvision's network, started from the given weights. Rank 0 saves the state dict.

  ddp_reference.py ARCH INIT.pt OUT.pt CLASSES --rows R0.jsonl R1.jsonl ... [--batch 16 --lr 1e-4
                   --momentum 0.9 --mean 0.481 --std 0.2373]

INIT.pt gives the parameters; BatchNorm's buffers start fresh (mean 0, variance 1, count 0), as
they do in cxrtrain. Inputs are grey frames / 255, normalised, replicated to 3 channels, as
cxrtrain feeds them."""
import argparse
import json
import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
import torchvision
from PIL import Image


def frames(rows_path, classes, mean, std):
    items = []
    for line in open(rows_path):
        row = json.loads(line)
        if row.get("split") != "train" or "error" in row:
            continue
        x = np.asarray(Image.open(row["image"]).convert("L"), dtype=np.float32) / 255.0
        items.append((torch.from_numpy((x - mean) / std)[None].repeat(3, 1, 1), classes.index(row["label"])))
    return items


def worker(rank, a, port):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=len(a.rows))
    torch.set_num_threads(1)
    classes = a.classes.split(",")
    model = getattr(torchvision.models, a.arch)(num_classes=len(classes))
    state = model.state_dict()
    init = torch.load(a.init)
    for name, _ in model.named_parameters():
        state[name] = init[name]
    model.load_state_dict(state)
    ddp = torch.nn.parallel.DistributedDataParallel(model)  # broadcast_buffers=True, as DDP defaults
    opt = torch.optim.SGD(ddp.parameters(), lr=a.lr, momentum=a.momentum)
    items = frames(a.rows[rank], classes, a.mean, a.std)
    ddp.train()
    steps = 0
    for i in range(0, len(items), a.batch):
        batch = items[i:i + a.batch]
        x = torch.stack([b[0] for b in batch])
        y = torch.tensor([b[1] for b in batch])
        opt.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        opt.step()
        steps += 1
    if rank == 0:
        torch.save(model.state_dict(), a.out)
        print(f"DistributedDataParallel: {len(a.rows)} ranks, {steps} steps, {len(items)} scans on rank 0")
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch")
    ap.add_argument("init")
    ap.add_argument("out")
    ap.add_argument("classes")
    ap.add_argument("--rows", nargs="+", required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--mean", type=float, default=0.481)
    ap.add_argument("--std", type=float, default=0.2373)
    a = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(a, port), nprocs=len(a.rows), join=True)


if __name__ == "__main__":
    main()
