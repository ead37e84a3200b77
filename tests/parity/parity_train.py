# SPDX-License-Identifier: LGPL-2.1-or-later
"""Round trip of a training run: train with cxrtrain in a gst-launch-1.0 pipeline, then serve the
run's model.toml with cxrinfer, and compare with torchvision given best.pt.

- best.pt loads into torchvision's model with load_state_dict(strict=True);
- cxrinfer (the card's input size and normalisation, BatchNorm folded) and torchvision eager on
  the identical preprocessed frames (saved by cxrresultsink) agree to 1e-4 in probability;
- the probabilities cxrtrain wrote to test_predictions.csv (best weights, eval mode) agree with
  torchvision's on the same scans to 1e-4;
- summary.json's test macro F1, accuracy and confusion matrix equal scikit-learn's on
  test_predictions.csv."""
import csv
import json
import os
import subprocess
import sys
import tempfile
import tomllib

import numpy as np
import torch
import torchvision
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

TOL = 1e-4
SAMPLES = os.environ.get("CXR_SAMPLES", os.path.join(os.path.dirname(__file__), "..", "..", "data", "samples"))
PREP = "cxrdecode ! cxrequalize ! cxrblur ! cxrresize mode=stretch width=64 height=64"


def launch(pipeline, log):
    r = subprocess.run(["gst-launch-1.0", "-q"] + pipeline.split(), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{log} failed:\n{r.stdout}\n{r.stderr}")
    return r.stderr


def main():
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        src = f"cxrscansrc location={SAMPLES}/pneumonia split=0.7,0.15,0.15 seed=30 shuffle=true epochs=3"
        launch(f"{src} ! {PREP} ! cxraugment seed=1 ! cxrtrain model=resnet34 output-dir={run} batch-size=8 "
               f"learning-rate=0.001 lr-end=0.0001 epochs=3 mean=0.481 std=0.2373 progress=false", "training")
        for f in ("model.toml", "best.pt", "last.pt", "last.opt.pt", "metrics.jsonl", "summary.json",
                  "test_predictions.csv"):
            assert os.path.exists(os.path.join(run, f)), f"{f} missing from the run directory"
        with open(os.path.join(run, "model.toml"), "rb") as f:
            card = tomllib.load(f)
        classes = card["model"]["classes"]
        assert card["model"]["architecture"] == "resnet34" and card["input"]["size"] == [64, 64], card
        mean, std = card["input"]["mean"][0], card["input"]["std"][0]
        assert abs(mean - 0.481) < 1e-6 and abs(std - 0.2373) < 1e-6, card

        model = torchvision.models.resnet34(num_classes=len(classes))
        model.load_state_dict(torch.load(os.path.join(run, "best.pt")), strict=True)
        model.eval()

        def torchvision_probs(png):
            x = np.asarray(Image.open(png).convert("L"), dtype=np.float32) / 255.0
            t = torch.from_numpy((x - mean) / std)[None].repeat(3, 1, 1)[None]
            with torch.no_grad():
                return torch.softmax(model(t), 1)[0].numpy()

        # Serve the card: every sample scan once, frames saved as the network saw them.
        rows_path, images = os.path.join(tmp, "rows.jsonl"), os.path.join(tmp, "img")
        launch(f"cxrscansrc location={SAMPLES}/pneumonia ! {PREP} ! cxrinfer model={run}/model.toml ! "
               f"cxrresultsink location={rows_path} image-dir={images}", "serving")
        rows = [json.loads(line) for line in open(rows_path)]
        assert len(rows) >= 60, len(rows)
        worst, by_path = 0.0, {}
        for r in rows:
            ref = torchvision_probs(r["image"])
            by_path[os.path.normpath(r["path"])] = ref
            worst = max(worst, float(np.abs(np.array(r["probabilities"]) - ref).max()))
        print(f"cxrinfer vs torchvision (best.pt), {len(rows)} scans: max |dp| = {worst:.2e}")
        assert worst <= TOL, f"cxrinfer differs from torchvision by {worst}"

        # The trainer's own test predictions.
        with open(os.path.join(run, "test_predictions.csv")) as f:
            test = list(csv.DictReader(f))
        assert test, "no test predictions"
        worst = 0.0
        for t in test:
            ours = np.array([float(t[f"prob_{c}"]) for c in classes])
            worst = max(worst, float(np.abs(ours - by_path[os.path.normpath(t["path"])]).max()))
        print(f"test_predictions.csv vs torchvision, {len(test)} scans: max |dp| = {worst:.2e}")
        assert worst <= TOL, f"test predictions differ from torchvision by {worst}"

        summary = json.load(open(os.path.join(run, "summary.json")))
        y = [classes.index(t["truth"]) for t in test]
        p = [classes.index(t["predicted"]) for t in test]
        f1 = f1_score(y, p, average="macro")
        assert abs(summary["test"]["f1"] - f1) < 1e-12, (summary["test"]["f1"], f1)
        assert abs(summary["test"]["accuracy"] - accuracy_score(y, p)) < 1e-12
        assert summary["test"]["confusion"] == confusion_matrix(y, p, labels=range(len(classes))).tolist()
        # Macro one-vs-rest AUROC from the probabilities as written (rounded to JSON's shortest form).
        probs = np.array([[float(t[f"prob_{c}"]) for c in classes] for t in test])
        if len(set(y)) == len(classes):
            auroc = roc_auc_score(y, probs / probs.sum(1, keepdims=True), multi_class="ovr", average="macro")
            assert abs(summary["test"]["macro_auroc"] - auroc) < 1e-6, (summary["test"]["macro_auroc"], auroc)
        print(f"summary.json test metrics equal scikit-learn's (macro F1 {f1:.3f})")
        pretrained_from_torchvision(tmp)
    print("ok")


def pretrained_from_torchvision(tmp):
    """Transfer learning from a state dict torchvision wrote, shaped as the ImageNet file a user
    supplies (efficientnet_b1-c27df63c.pth, IMAGENET1K_V2: 1000 classes): cxrtrain takes every
    weight but the head, which it makes for the stream's 3 classes. With freeze-backbone the
    backbone's parameters end the run exactly as torchvision wrote them."""
    torch.manual_seed(5)
    donor = torchvision.models.efficientnet_b1()
    path = os.path.join(tmp, "efficientnet_b1_imagenet_shaped.pth")
    torch.save(donor.state_dict(), path)
    run = os.path.join(tmp, "transfer")
    launch(f"cxrscansrc location={SAMPLES}/pneumonia split=0.7,0.15,0.15 seed=30 epochs=1 ! {PREP} ! "
           f"cxrtrain model=efficientnet_b1 pretrained={path} freeze-backbone=true output-dir={run} batch-size=8 "
           f"learning-rate=0.01 epochs=1 mean=0.481 std=0.2373 threads=2 progress=false", "transfer learning")
    best = torch.load(os.path.join(run, "best.pt"))
    model = torchvision.models.efficientnet_b1(num_classes=3)
    model.load_state_dict(best, strict=True)
    params = dict(donor.named_parameters())
    backbone = [k for k in params if not k.startswith("classifier.")]
    assert len(backbone) > 200, len(backbone)
    changed = [k for k in backbone if not torch.equal(best[k], params[k].detach())]
    assert not changed, f"{len(changed)} backbone parameters differ from torchvision's file, e.g. {changed[:3]}"
    assert best["classifier.1.weight"].shape == (3, 1280), best["classifier.1.weight"].shape
    print(f"transfer learning: {len(backbone)} backbone parameters from torchvision's state dict kept exactly; "
          f"head 3 x 1280 trained")


if __name__ == "__main__":
    main()
