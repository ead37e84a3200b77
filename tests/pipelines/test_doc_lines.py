#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What users run must work (issue #20): every documented gst-launch-1.0 line and every pipeline
TOML runs.

Documented lines: the `gst-launch-1.0 ...` lines (backslash continuations joined) in the doc
block at the top of each plugins/*.cpp (what gst-inspect-1.0 shows), in README.md, in docs/*.md,
in the comments of pipelines/**/*.toml and in `cxr COMMAND --help`. Pipeline TOMLs: every
pipelines/**/*.toml with [[element]] tables (the include fragments in pipelines/include/ aside)
runs with `cxr run`. Study files ([[run]] / [[sweep]]) are listed with `cxr study FILE --list`,
and the runs STUDY_SETTINGS names run with `cxr study` (one per pipeline the study uses).

Each line runs as documented, from a scratch directory that stands in for the repository root
(data/ linked in, ../shared/data beside it), so relative outputs (out.jsonl, out/, run/) land in
the scratch directory. The few edits a line needs to run here, on small data and in seconds, are
the SUBSTITUTIONS table; the TOMLs' variables are set by TOML_CAPS and TOML_SETTINGS. Lines that
need what this machine lacks (a PACS peer, a GPU: PARSE_ONLY) are parsed with
Gst.parse_launchv, as gst-launch-1.0 parses its words, so a renamed element or property still
fails.

Prints one line per documented line or TOML: RUN ok / PARSED (why) / LISTED / FAIL, with
file:line, the command and its output's tail. Exit 1 on any FAIL, or when fewer lines or TOMLs
were found than expected (a test that finds nothing must not pass).
"""
import csv
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.environ.get("CXR_SOURCE_ROOT", os.path.join(HERE, "..", "..")))
BUILD = os.environ.get("CXR_BUILD_ROOT", os.path.join(SRC, "build"))
TOOLS = os.environ.get("CXR_TOOLS", os.path.join(BUILD, "tools"))
SHARED = os.path.abspath(os.environ.get("CXR_SHARED_DATA", os.path.join(SRC, "..", "shared", "data")))
os.environ.setdefault("GST_PLUGIN_PATH_1_0", os.path.join(BUILD, "plugins"))
# One thread per pipeline: these are many tiny runs, and on a busy machine OpenMP's threads spin
# waiting for each other (a training TOML took 11 s with 2 threads beside another job, 2.5 s with 1).
os.environ["OMP_NUM_THREADS"] = "1"
CXR = os.path.join(TOOLS, "cxr")
TIMEOUT_S = 180                 # per line; the slowest (a study, or cxrtrain's line) takes ~6 s
DEMO_MODEL = "data/models/kermany-efficientnet_b1/model.toml"

# Fewer than this many found means the collection broke, not that there is nothing to check.
MIN_DOC_LINES = 15
MIN_TOMLS = 8

# Edits to a documented line before it runs: (regex, replacement, why). Applied in order to the
# text after `gst-launch-1.0`. {fixtures} is the scratch folder of made-up inputs.
SUBSTITUTIONS = [
    (r"\bepochs=\d+", "epochs=1",
     "one epoch runs every phase (train, val, test) and writes the whole run directory"),
    (r"\bmodel=(covid|card)\.toml\b", "model=" + DEMO_MODEL,
     "placeholder model card: the bundled demo model"),
    (r"\blocation=scans/", "location=data/samples/covid",
     "placeholder folder: the 6 bundled COVID PNGs"),
    (r"\bfilesrc location=scan\.dcm\b", "filesrc location=data/samples/dicom/CR-MONO1-10-chest.dcm",
     "placeholder DICOM: a bundled MONOCHROME1 CR"),
    (r"\bfilesrc location=scan\.png\b", "filesrc location=data/samples/covid/006f3a8a.png",
     "placeholder PNG: a bundled COVID scan"),
    (r"\bmultifilesrc location=scan%03d\.png\b", "multifilesrc location={fixtures}/numbered/scan%03d.png",
     "placeholder numbered PNGs: 3 bundled COVID scans copied as scan000.png ..."),
]

# Lines that cannot run here; they are parsed instead: (regex on the line, why).
PARSE_ONLY = [
    (r"\bcxrdicomsrc\b|\bcxrdicomsink\b", "needs a PACS peer (C-STORE)"),
    (r"\bdevice=cuda", "needs a GPU"),
    (r"\bprecision=(fp16|bf16)\b", "needs a GPU"),
]

# Variables a pipeline TOML gets when its [variables] has them (and every study run): one
# training epoch at a small size, on one thread (see OMP_NUM_THREADS above).
TOML_CAPS = {
    "epochs": "1",
    "size": "64",
    "threads": "1",
}
# The datasets the training TOMLs name, cut down (make_scratch writes them): {fixtures}/...
#   covid/            COVID-19 Radiography layout, 6 scans per class folder (bundled scans)
#   pneumonia.csv     30 rows of ../shared/data/pneumonia/labels.csv (10 per class)
#   kermany.csv       33 rows of data/kermany/index.csv (8 train + 3 test per class)
#   chestxray8.csv    40 of the shared 64 px NIH scans, with the study's 7 label columns
# Per TOML (path under pipelines/): variables whose defaults are placeholders or full datasets.
TOML_SETTINGS = {
    "classify-folder.toml": {"model": DEMO_MODEL},          # default model.toml: the user's card
    "study/train-covid.toml": {"data": "{fixtures}/covid"},  # default data/covid: not bundled
    "study/train-pneumonia.toml": {"labels": "{fixtures}/pneumonia.csv"},
    "study/train-chestxray8.toml": {"data": "{shared}/nih", "labels": "{fixtures}/chestxray8.csv"},
    # default model: a trained study run's card (out/kermany/...); the demo card stands in
    "study/explain-test.toml": {"model": DEMO_MODEL, "labels": "{fixtures}/kermany.csv"},
    "study/gradcam-grid.toml": {"model": DEMO_MODEL},
}
# Study files: `cxr study --list` for all; then these runs (--only) really run, at TOML_CAPS,
# with these variables, into the scratch dir: one run per pipeline the study uses (the transfer
# runs need ImageNet weights that are not here).
STUDY_SETTINGS = {
    "study/ablation-lr.toml": ({"covid": "{fixtures}/covid"}, ["efficientnet_b1-covid/learning-rate=0.01"]),
    "study/kermany.toml": ({"labels": "{fixtures}/kermany.csv"}, ["kermany-mobilenet_v3_large"]),
    "study/study-demo.toml": ({"labels": "{fixtures}/pneumonia.csv"},
                              ["pneumonia-resnet34", "pneumonia-mobilenet_v3_large"]),
    "study/study.toml": ({"covid": "{fixtures}/covid", "pneumonia": "{shared}/pneumonia",
                          "pneumonia-labels": "{fixtures}/pneumonia.csv", "chestxray8": "{shared}/nih",
                          "chestxray8-labels": "{fixtures}/chestxray8.csv"},
                         ["covid-efficientnet_b1", "pneumonia-mobilenet_v3_large", "chestxray8-resnet34"]),
}


class Line:
    def __init__(self, source, lineno, text):
        self.source, self.lineno, self.text = source, lineno, text  # source: a file or "cxr CMD --help"

    def where(self):
        return f"{os.path.relpath(self.source, SRC) if os.path.isabs(self.source) else self.source}:{self.lineno}"

    def group(self):
        return os.path.relpath(self.source, SRC).split(os.sep)[0] if os.path.isabs(self.source) else "cxr --help"


def launch_lines(path, body_lines, first_lineno):
    """gst-launch-1.0 lines in text whose comment markers are already stripped."""
    out, i = [], 0
    while i < len(body_lines):
        text = body_lines[i].strip()
        if text.startswith("$ "):
            text = text[2:]
        if not text.startswith("gst-launch-1.0 "):
            i += 1
            continue
        start = i
        while text.endswith("\\") and i + 1 < len(body_lines):
            i += 1
            text = text[:-1].rstrip() + " " + body_lines[i].strip()
        out.append(Line(path, first_lineno + start, text))
        i += 1
    return out


def collect_doc_lines():
    lines, missing = [], []
    for path in sorted(glob.glob(os.path.join(SRC, "plugins", "*.cpp"))):
        src = open(path, encoding="utf-8").read()
        m = re.search(r"/\*\*(.*?)\*/", src, re.S)
        if not m:
            continue
        first = src[:m.start(1)].count("\n") + 1
        body = [re.sub(r"^\s*\*? ?", "", l) for l in m.group(1).split("\n")]
        found = launch_lines(path, body, first)
        # STYLE.md: every element's doc block has a runnable line.
        if not found and "GST_ELEMENT_REGISTER_DEFINE" in src:
            missing.append(path)
        lines += found
    for path in [os.path.join(SRC, "README.md")] + sorted(glob.glob(os.path.join(SRC, "docs", "*.md"))):
        lines += launch_lines(path, open(path, encoding="utf-8").read().split("\n"), 1)
    for path in sorted(glob.glob(os.path.join(SRC, "pipelines", "**", "*.toml"), recursive=True)):
        body = [re.sub(r"^\s*#", "", l) if l.lstrip().startswith("#") else "" for l in
                open(path, encoding="utf-8").read().split("\n")]
        lines += launch_lines(path, body, 1)
    # What `cxr COMMAND --help` shows (the commands as `cxr --help` lists them)
    commands = re.findall(r"^  ([a-z]+) ", subprocess.run([CXR, "--help"], capture_output=True, text=True).stdout, re.M)
    for c in commands:
        text = subprocess.run([CXR, c, "--help"], capture_output=True, text=True).stdout
        lines += launch_lines(f"cxr {c} --help", text.split("\n"), 1)
    return lines, missing


def collect_tomls():
    pipes, studies = [], []
    for path in sorted(glob.glob(os.path.join(SRC, "pipelines", "**", "*.toml"), recursive=True)):
        rel = os.path.relpath(path, os.path.join(SRC, "pipelines"))
        if rel.startswith("include" + os.sep):
            continue            # fragments, spliced into the others
        doc = tomllib.load(open(path, "rb"))
        if "run" in doc or "sweep" in doc:
            studies.append(path)
        elif "element" in doc:
            pipes.append(path)
    return pipes, studies


def make_scratch(tmp):
    """tmp/repo stands in for the repository root; tmp/shared/data for ../shared/data."""
    repo, fixtures = os.path.join(tmp, "repo"), os.path.join(tmp, "fixtures")
    os.makedirs(repo)
    os.symlink(os.path.join(SRC, "data"), os.path.join(repo, "data"))
    os.makedirs(os.path.join(tmp, "shared"))
    if os.path.isdir(SHARED):
        os.symlink(SHARED, os.path.join(tmp, "shared", "data"))
    samples = os.path.join(SRC, "data", "samples")
    covid = sorted(glob.glob(os.path.join(samples, "covid", "*.png")))
    # scan000.png ... for multifilesrc
    os.makedirs(os.path.join(fixtures, "numbered"))
    for i, f in enumerate(covid[:3]):
        shutil.copy(f, os.path.join(fixtures, "numbered", f"scan{i:03d}.png"))
    # COVID-19 Radiography layout: one folder per class (its Normal / Viral are Kermany scans too)
    for cls, files in (("COVID", covid),
                       ("Normal", sorted(glob.glob(os.path.join(samples, "pneumonia", "normal", "*")))[:6]),
                       ("Viral Pneumonia", sorted(glob.glob(os.path.join(samples, "pneumonia", "viral", "*")))[:6])):
        os.makedirs(os.path.join(fixtures, "covid", cls))
        for f in files:
            os.symlink(f, os.path.join(fixtures, "covid", cls, os.path.basename(f)))
    if not os.path.isdir(SHARED):
        print(f"NOTE: no shared data at {SHARED}: the TOMLs that read it will fail")
        return repo, fixtures
    subset_csv(os.path.join(SHARED, "pneumonia", "labels.csv"), os.path.join(fixtures, "pneumonia.csv"),
               lambda r: r["label_3class"], 10)
    subset_csv(os.path.join(SRC, "data", "kermany", "index.csv"), os.path.join(fixtures, "kermany.csv"),
               lambda r: (r["label"], r["split"]), lambda key: 8 if key[1] == "train" else 3)
    # ChestX-ray8 in the study's format (a 0/1 column per label, Patient ID), 64 px NIH scans
    labels = ["Atelectasis", "Consolidation", "Effusion", "Mass", "Nodule", "Pneumothorax"]
    rows = [r for r in csv.DictReader(open(os.path.join(SHARED, "nih", "labels.csv")))
            if r["path"].startswith("nih1000_64px/train/")]
    rows = rows[:20] + rows[-20:]       # both folders: 0_normal, 1_abnormal
    with open(os.path.join(fixtures, "chestxray8.csv"), "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["path", "Patient ID"] + labels + ["No Finding"])
        for r in rows:
            w.writerow([r["path"], r["image_index"][:8]] + [r[l] for l in labels]
                       + [int(r["finding_labels"] == "No Finding")])
    return repo, fixtures


def subset_csv(src, dst, group, n):
    """The first n rows (n: a number or a function of the group) of each group of an index."""
    with open(src, newline="") as f:
        reader = csv.DictReader(f)
        taken, rows = {}, []
        for r in reader:
            key = group(r)
            if taken.get(key, 0) < (n(key) if callable(n) else n):
                taken[key] = taken.get(key, 0) + 1
                rows.append(r)
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=reader.fieldnames)
        w.writeheader()
        w.writerows(rows)


def fill(text, fixtures):
    return text.replace("{fixtures}", fixtures).replace("{shared}", SHARED)


def parse_only_reason(text):
    for pattern, why in PARSE_ONLY:
        if re.search(pattern, text):
            return why
    return None


def split_launch(text):
    """gst-launch-1.0 [options] DESCRIPTION -> (options, description words)."""
    words = shlex.split(text)[1:]
    opts = []
    while words and words[0].startswith("-"):
        opts.append(words.pop(0))
    return opts, words


def parse(words):
    """None if the description parses (as gst-launch-1.0 would: gst_parse_launchv), else why not."""
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import GLib, Gst
    Gst.init(None)
    try:
        pipeline = Gst.parse_launch(words) if isinstance(words, str) else Gst.parse_launchv(words)
    except GLib.Error as e:
        return str(e)
    pipeline.set_state(Gst.State.NULL)
    return None


def outputs(words, cwd):
    """(path, factory) a description writes: a sink's location, any image-dir / output-dir."""
    found, factory = [], None
    for w in words:
        if w == "!" or "=" not in w:
            factory = None if w == "!" else (factory or w)
            continue
        key, value = w.split("=", 1)
        if key in ("image-dir", "output-dir") or (key == "location" and factory and factory.endswith("sink")):
            found.append((os.path.normpath(os.path.join(cwd, value)), factory))
    return found


def show(cmd):
    return shlex.join(cmd).replace("'!'", "!")


def tail(s, n=15):
    return "\n".join("      " + l for l in s.strip().split("\n")[-n:])


def check_outputs(written, tmp):
    for p, _ in written:
        if not os.path.realpath(p).startswith(os.path.realpath(tmp) + os.sep):
            return f"writes outside the scratch dir: {p} (add a substitution)"
    return None


def check_written(written):
    """None if every output is there and whole, else what is wrong. gst-launch-1.0 exits 0 when
    every scan became an error row (on-error=skip), so result rows are read too."""
    for p, factory in written:
        if os.path.isdir(p):
            if not os.listdir(p):
                return f"output folder is empty: {p}"
            if factory == "cxrtrain" and not os.path.isfile(os.path.join(p, "summary.json")):
                return f"training did not finish: no {p}/summary.json"
        elif not os.path.isfile(p) or os.path.getsize(p) == 0:
            return f"output missing or empty: {p}"
        elif p.endswith(".jsonl"):
            rows = [json.loads(l) for l in open(p) if l.strip()]
            errors = [r for r in rows if "error" in r]
            if errors:
                return f"{len(errors)} of {len(rows)} rows are errors in {p}, e.g. {errors[0]}"
    return None


def wrote(written, cwd):
    return ", ".join(os.path.relpath(p, cwd) for p, _ in written) or "no file"


def run(cmd, cwd):
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        return f"timeout after {TIMEOUT_S} s", out


def check_doc_line(line, repo, fixtures, tmp):
    """-> (status, detail)"""
    text = line.text
    why = parse_only_reason(text)
    opts, words = split_launch(text)
    if why:
        err = parse(words)
        return ("FAIL", f"does not parse: {err}") if err else ("PARSED", why)
    for pattern, repl, _ in SUBSTITUTIONS:
        text = re.sub(pattern, fill(repl, fixtures), text)
    opts, words = split_launch(text)
    written = outputs(words, repo)
    bad = check_outputs(written, tmp)
    if bad:
        return "FAIL", bad
    # -q, but not where the line asks for the bus messages (-m): -q would hide them.
    cmd = ["gst-launch-1.0"] + ([] if "-m" in opts else ["-q"]) + opts + words
    t0 = time.monotonic()
    rc, out = run(cmd, repo)
    if rc != 0:
        return "FAIL", f"exit {rc}: {show(cmd)}\n{tail(out)}"
    seconds = time.monotonic() - t0
    bad = check_written(written)
    if bad:
        return "FAIL", f"{bad}: {show(cmd)}\n{tail(out)}"
    detail = f"{seconds:.1f} s, wrote {wrote(written, repo)}"
    if "-m" in opts:
        n = len(re.findall(r"^Got message .* \(element\): cxr-", out, re.M))
        if not n:
            return "FAIL", f"-m shows no cxr element message: {show(cmd)}\n{tail(out)}"
        detail += f"; {n} cxr element messages"
    return "RUN ok", detail


def check_toml(path, repo, fixtures, tmp):
    rel = os.path.relpath(path, os.path.join(SRC, "pipelines"))
    own = tomllib.load(open(path, "rb")).get("variables", {})
    sets = {k: v for k, v in TOML_CAPS.items() if k in own}
    sets.update(TOML_SETTINGS.get(rel, {}))
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={fill(v, fixtures)}")]
    rc, out = run([CXR, "explain", path, "--launch-string"] + args, repo)
    if rc != 0:
        return "FAIL", f"cxr explain exit {rc}\n{tail(out)}"
    description = out.strip()
    why = parse_only_reason(description)
    if why:
        err = parse(description)
        return ("FAIL", f"does not parse: {err}\n      {description}") if err else ("PARSED", why)
    written = outputs(shlex.split(description), repo)
    bad = check_outputs(written, tmp)
    if bad:
        return "FAIL", bad
    cmd = [CXR, "run", path, "--no-progress"] + args
    t0 = time.monotonic()
    rc, out = run(cmd, repo)
    if rc != 0 or not re.search(r"^cxr run: ok: [1-9]\d* scans, 0 errors", out, re.M):
        return "FAIL", f"exit {rc}: {show(cmd)}\n{tail(out)}"
    bad = check_written(written)
    if bad:
        return "FAIL", f"{bad}: {show(cmd)}\n{tail(out)}"
    return "RUN ok", (f"{time.monotonic() - t0:.1f} s, wrote {wrote(written, repo)}"
                      + "".join(f" --set {k}={v}" for k, v in sets.items()))


def check_study(path, repo, fixtures, tmp):
    rel = os.path.relpath(path, os.path.join(SRC, "pipelines"))
    rc, out = run([CXR, "study", path, "--list"], repo)
    if rc != 0:
        return "FAIL", f"cxr study --list exit {rc}\n{tail(out)}"
    listed = out.strip().split("\n")
    if rel not in STUDY_SETTINGS:
        return "LISTED", f"{len(listed)} runs (none run: add it to STUDY_SETTINGS)"
    variables, only = STUDY_SETTINGS[rel]
    sets = dict(TOML_CAPS, **variables)
    output = os.path.join(tmp, "studies", os.path.splitext(rel)[0])
    cmd = ([CXR, "study", path, "--output", output, "--no-progress"]
           + [a for k, v in sets.items() for a in ("--set", f"{k}={fill(v, fixtures)}")]
           + [a for o in only for a in ("--only", o)])
    t0 = time.monotonic()
    rc, out = run(cmd, repo)
    if rc != 0:
        return "FAIL", f"exit {rc}: {show(cmd)}\n{tail(out)}"
    for o in only:
        if not os.path.isfile(os.path.join(output, o, "summary.json")):
            return "FAIL", f"run {o}: no summary.json: {show(cmd)}\n{tail(out)}"
    if not os.path.isfile(os.path.join(output, "report", "index.html")):
        return "FAIL", f"no report/index.html: {show(cmd)}\n{tail(out)}"
    return "RUN ok", (f"{len(listed)} runs listed; {time.monotonic() - t0:.1f} s for " + ", ".join(only)
                      + " and the report" + "".join(f" --set {k}={v}" for k, v in sets.items()))


def main():
    t_start = time.monotonic()
    lines, missing = collect_doc_lines()
    pipes, studies = collect_tomls()
    failures = 0
    counts = {}

    def record(status, detail, where):
        """Counts one checked line or file and prints its row; returns the status."""
        nonlocal failures
        counts[status] = counts.get(status, 0) + 1
        failures += status == "FAIL"
        print(f"{status:8} {where}: {detail}")
        return status

    tmp = tempfile.mkdtemp(prefix="cxr-doc-lines-")
    try:
        repo, fixtures = make_scratch(tmp)
        for path in missing:
            print(f"FAIL     {os.path.relpath(path, SRC)}: the element's doc block has no gst-launch-1.0 line")
            failures += 1
        print(f"--- {len(lines)} documented gst-launch-1.0 lines")
        for line in lines:
            status = record(*check_doc_line(line, repo, fixtures, tmp), line.where())
            if status != "RUN ok":
                print(f"      {line.text}")
        print(f"--- {len(pipes)} pipeline TOMLs")
        for path in pipes:
            record(*check_toml(path, repo, fixtures, tmp), os.path.relpath(path, SRC))
        print(f"--- {len(studies)} study TOMLs")
        for path in studies:
            record(*check_study(path, repo, fixtures, tmp), os.path.relpath(path, SRC))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    by_source = {}
    for line in lines:
        by_source[line.group()] = by_source.get(line.group(), 0) + 1
    print("--- lines by source: " + ", ".join(f"{k} {v}" for k, v in sorted(by_source.items())))
    print("--- " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
          + f"; {time.monotonic() - t_start:.0f} s")
    if len(lines) < MIN_DOC_LINES:
        print(f"FAIL: only {len(lines)} documented gst-launch-1.0 lines found (expected >= {MIN_DOC_LINES})")
        failures += 1
    if len(pipes) < MIN_TOMLS:
        print(f"FAIL: only {len(pipes)} pipeline TOMLs found (expected >= {MIN_TOMLS})")
        failures += 1
    if failures:
        print(f"FAIL: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
