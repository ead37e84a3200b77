#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Bad input: every broken scan becomes exactly one error row naming the file and the reason,
# a warning on the bus, and the stream goes on; on-error=stop ends it with an error instead.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$CXR_PYTHON" "$here/make_bad_inputs.py" "$tmp/in" "$CXR_SAMPLES" > "$tmp/expect.tsv"
n_in=$(ls "$tmp/in" | wc -l)

gst-launch-1.0 cxrscansrc location="$tmp/in" ! cxrdecode ! cxrequalize ! cxrblur ! \
  cxrresultsink location="$tmp/rows.jsonl" > "$tmp/log" 2>&1 || { cat "$tmp/log"; fail "pipeline failed"; }

rows=$(wc -l < "$tmp/rows.jsonl")
[ "$rows" -eq "$n_in" ] || fail "$n_in inputs but $rows rows"
warnings=$(grep -c "^WARNING: from element" "$tmp/log" || true)

"$CXR_PYTHON" - "$tmp/rows.jsonl" "$tmp/expect.tsv" "$warnings" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
expect = dict(l.rstrip("\n").split("\t") for l in open(sys.argv[2]))
by_name = {}
for r in rows:
    name = os.path.basename(r["path"])
    assert name not in by_name, f"two rows for {name}"
    by_name[name] = r
assert set(by_name) == set(expect), (sorted(by_name), sorted(expect))
bad = 0
for name, want in expect.items():
    r = by_name[name]
    if want == "ok":
        assert "error" not in r, f"{name}: unexpected error {r.get('error')}"
        assert r["width"] > 0 and r["height"] > 0, r
    else:
        bad += 1
        assert "error" in r, f"{name}: decoded, expected an error ({r})"
        assert r["error"].strip(), f"{name}: empty reason"
        assert want.lower() in r["error"].lower(), f"{name}: reason {r['error']!r} lacks {want!r}"
        print(f"{name}: {r['error']}")
assert int(sys.argv[3]) >= bad, f"{bad} bad scans but {sys.argv[3]} warnings"
print(f"{len(rows)} rows, {bad} error rows, all as expected")
PY

# on-error=stop: the first bad scan ends the stream with an error naming it.
if gst-launch-1.0 cxrscansrc location="$tmp/in" ! cxrdecode on-error=stop ! \
   cxrresultsink location="$tmp/stop.jsonl" > "$tmp/log2" 2>&1; then
  fail "on-error=stop did not fail"
fi
grep -q "01-zero.png" "$tmp/log2" || { cat "$tmp/log2"; fail "error does not name the file"; }
