#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job end to end: every bundled sample scan decoded, classified by the bundled demo
# model, explained with a Grad-CAM overlay at the scan's own size, one row each; then the report
# of the model's training run.
set -euo pipefail
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$CXR_SOURCE_ROOT"
cxr="$CXR_TOOLS/cxr"

"$cxr" run pipelines/demo.toml --set output="$tmp/demo" > "$tmp/log" 2>&1 || { cat "$tmp/log"; fail "cxr run demo"; }
"$cxr" report data/models/kermany-efficientnet_b1/run --output "$tmp/report" >> "$tmp/log" 2>&1 || { cat "$tmp/log"; fail "cxr report"; }

"$CXR_PYTHON" - "$tmp" data/samples/index.csv <<'PY'
import csv, json, os, sys
from PIL import Image
tmp, index = sys.argv[1], sys.argv[2]
want = [r["path"] for r in csv.DictReader(open(index))]
rows = [json.loads(l) for l in open(os.path.join(tmp, "demo/results.jsonl"))]
assert len(rows) == len(want), f"{len(want)} scans, {len(rows)} rows"
assert sorted(os.path.relpath(r["path"], "data/samples") for r in rows) == sorted(want)
labelled = correct = 0
for r in rows:
    assert "error" not in r, r
    assert r["model"] == "kermany-efficientnet_b1" and r["classes"] == ["bacterial", "normal", "viral"], r
    p = r["probabilities"]
    assert len(p) == 3 and abs(sum(p) - 1) < 1e-4 and min(p) >= 0, p
    assert r["predicted"] == r["classes"][p.index(max(p))]
    img = Image.open(r["image"])
    assert img.mode == "RGB" and img.size == (r["width"], r["height"]), (img.mode, img.size, r)
    if "label" in r:
        labelled += 1
        correct += r["label"] == r["predicted"]
assert labelled == 60, labelled
# The 60 labelled samples are scans of the official Kermany test split, which the model never
# trained on: the decisions cxrinfer makes in the demo (float16 weights, the card's input size)
# are the ones the trainer wrote for the same scans with its float32 best weights, and they are
# clearly better than chance (1 in 3: 30 or more right by chance has p = 0.006).
trained = {os.path.basename(t["path"]): t["predicted"]
           for t in csv.DictReader(open("data/models/kermany-efficientnet_b1/run/test_predictions.csv"))}
demo = {os.path.basename(r["path"]): r["predicted"] for r in rows if "label" in r}
differ = [k for k in demo if trained.get(k) != demo[k]]
assert not differ, f"{len(differ)} of 60 decisions differ from the run's test_predictions.csv: {differ[:3]}"
assert correct >= 30, f"only {correct}/60 correct"
html = open(os.path.join(tmp, "report/index.html")).read()
for png in [l.split('"')[1] for l in html.split("src=")[1:]]:
    with open(os.path.join(tmp, "report", png), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", png
print(f"{len(rows)} rows, {correct}/{labelled} labelled scans predicted right, report ok")
PY
