#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cxrtrain in real pipelines over the bundled pneumonia samples:
#  1. a run killed with SIGKILL in the middle of training and restarted with resume=true ends
#     with the same weights, metrics and test predictions as an uninterrupted run (same seed,
#     one LibTorch thread: bit-reproducible on the CPU);
#  2. training and inference from one stream through a tee, with `epochs` set on the source only:
#     cxrtrain's cosine schedule takes it from the source's cxr-dataset event;
#  3. progress travels as bus messages: cxrtrain prints nothing by default, `cxr launch` prints
#     each epoch's line from the cxr-epoch message.
set -euo pipefail
tmp="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

epochs=5
src="cxrscansrc location=$CXR_SAMPLES/pneumonia split=0.7,0.15,0.15 seed=30 shuffle=true epochs=$epochs"
prep="cxrdecode ! cxrequalize ! cxrblur ! cxrresize mode=stretch width=64 height=64"
train="cxrtrain model=mobilenet_v3_large batch-size=8 threads=1 seed=42 epochs=$epochs mean=0.481 std=0.2373 progress=true"

# 1. Uninterrupted.
gst-launch-1.0 -q $src ! $prep ! cxraugment seed=3 ! $train output-dir="$tmp/full" > "$tmp/full.log" 2>&1 \
  || { cat "$tmp/full.log"; fail "uninterrupted run failed"; }
[ "$(wc -l < "$tmp/full/metrics.jsonl")" -eq $epochs ] || fail "expected $epochs metrics rows"

# Killed once two epochs are complete (the third is under way), then resumed.
gst-launch-1.0 -q $src ! $prep ! cxraugment seed=3 ! $train output-dir="$tmp/killed" > "$tmp/killed.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$tmp/killed/metrics.jsonl" ] && [ "$(wc -l < "$tmp/killed/metrics.jsonl")" -ge 2 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || fail "the run ended before it could be killed"
wait "$pid" 2>/dev/null || true
pid=""
done_rows=$(wc -l < "$tmp/killed/metrics.jsonl")
[ "$done_rows" -lt $epochs ] || fail "killed too late ($done_rows epochs done)"
[ ! -f "$tmp/killed/summary.json" ] || fail "a killed run must not have a summary"
gst-launch-1.0 -q $src ! $prep ! cxraugment seed=3 ! $train output-dir="$tmp/killed" resume=true > "$tmp/resumed.log" 2>&1 \
  || { cat "$tmp/resumed.log"; fail "resumed run failed"; }
# The resumed run trains only the epochs that were missing: those after the last metrics row,
# or one more when the kill fell between that row and the resume archive that completes an epoch.
resumed_epochs=$(grep -c "^cxrtrain epoch" "$tmp/resumed.log" || true)
missing=$((epochs - done_rows))
[ "$resumed_epochs" -eq $missing ] || [ "$resumed_epochs" -eq $((missing + 1)) ] \
  || fail "resumed run trained $resumed_epochs epochs, expected $missing (or $((missing + 1)))"
[ "$(wc -l < "$tmp/killed/metrics.jsonl")" -eq $epochs ] || fail "resumed run: expected $epochs metrics rows"

"$CXR_PYTHON" - "$tmp/full" "$tmp/killed" <<'PY'
import json, sys, torch
a, b = sys.argv[1], sys.argv[2]
for name in ("best.pt", "last.pt"):
    da, db = torch.load(f"{a}/{name}"), torch.load(f"{b}/{name}")
    assert da.keys() == db.keys(), name
    bad = [k for k in da if not torch.equal(da[k], db[k])]
    assert not bad, f"{name}: {len(bad)} tensors differ after resume, e.g. {bad[:3]}"
def rows(d):
    return [{k: v for k, v in json.loads(l).items() if k not in ("seconds", "train_seconds", "train_profile")} for l in open(f"{d}/metrics.jsonl")]
assert rows(a) == rows(b), "metrics differ after resume"
assert open(f"{a}/test_predictions.csv").read() == open(f"{b}/test_predictions.csv").read(), "test predictions differ"
sa, sb = json.load(open(f"{a}/summary.json")), json.load(open(f"{b}/summary.json"))
assert sa["test"] == sb["test"] and sa["best_epoch"] == sb["best_epoch"], (sa, sb)
print(f"resume: {len(rows(a))} epochs, identical weights, metrics and test predictions; test f1 {sa['test']['f1']:.3f}")
PY

# 2. Train and infer from one stream: the results sink gets every scan, the trainer its run. The
# trainer is not told the epochs: the source announces them.
gst-launch-1.0 -q $src ! $prep ! tee name=t \
  t. ! queue ! cxraugment seed=3 ! cxrtrain model=mobilenet_v3_large batch-size=8 output-dir="$tmp/tee" progress=false \
  t. ! queue ! cxrinfer model="$tmp/full/model.toml" ! cxrresultsink location="$tmp/tee.jsonl" > "$tmp/tee.log" 2>&1 \
  || { cat "$tmp/tee.log"; fail "tee pipeline failed"; }
"$CXR_PYTHON" - "$tmp/tee" "$tmp/tee.jsonl" "$epochs" <<'PY'
import json, sys
run, rows, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
summary = json.load(open(f"{run}/summary.json"))
assert summary["epochs_completed"] == epochs, summary
# The cosine schedule over the announced epochs: torch's CosineAnnealingLR(T_max=epochs), 0.01 -> 0.001.
import math
lrs = [json.loads(l)["lr"] for l in open(f"{run}/metrics.jsonl")]
want = [0.001 + (0.01 - 0.001) * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]
assert all(abs(a - b) < 1e-9 for a, b in zip(lrs, want)) and len(lrs) == epochs, (lrs, want)
rows = [json.loads(l) for l in open(rows)]
test = [r for r in rows if r.get("split") == "test"]
assert len(test) == summary["test"]["n"], (len(test), summary["test"]["n"])
assert all("probabilities" in json.dumps(r) for r in test), "rows without results"
print(f"tee: {len(rows)} result rows, run of {epochs} epochs")
PY
# 3. Progress lines from the bus, not from the element.
line="$src ! $prep ! cxrtrain model=mobilenet_v3_large batch-size=8 threads=1"
gst-launch-1.0 -q $line output-dir="$tmp/quiet" > "$tmp/quiet.log" 2>&1 || { cat "$tmp/quiet.log"; fail "quiet run failed"; }
! grep -q "cxrtrain epoch" "$tmp/quiet.log" || fail "cxrtrain printed epoch lines without progress=true"
"$CXR_TOOLS/cxr" launch --no-progress "$line output-dir=$tmp/printed" > "$tmp/printed.out" 2> "$tmp/printed.log" \
  || { cat "$tmp/printed.log"; fail "cxr launch of a training line failed"; }
[ "$(grep -c "^cxrtrain epoch [0-9]/$epochs " "$tmp/printed.log")" -eq $epochs ] \
  || { cat "$tmp/printed.log"; fail "cxr launch did not print one line per epoch"; }
grep -q "^cxrtrain test (best epoch" "$tmp/printed.log" || fail "cxr launch did not print the test line"
echo "ok"
