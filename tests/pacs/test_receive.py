# SPDX-License-Identifier: LGPL-2.1-or-later
"""storescu -> cxrdicomsrc -> cxrdecode -> results -> cxrdicomsink output-dir, no PACS:
every instance is received into the inbox, reported as SR + SC in its study, and released
from the inbox; an unknown calling AE is refused at association; inbox leftovers are emitted
again at start."""
import os
import shutil

from pacs_util import *

root = tmpdir("receive")
inbox, out, src = os.path.join(root, "inbox"), os.path.join(root, "out"), os.path.join(root, "src")
port = free_port()
files = make_copies(src, 6)
sources = {tag(f, "0008,0018"): tag(f, "0020,000d") for f in files}
check(len(sources) == 6, "copies need distinct SOP Instance UIDs")

p = Pipeline(root, pipeline_desc(port, inbox, "output-dir=" + out, results=os.path.join(root, "rows.jsonl")))
p.start(port)

# 1. An unknown calling AE is refused at association time; nothing reaches the inbox.
r = storescu(port, files[:1], aet="INTRUDER")
check(r.returncode != 0, "storescu from INTRUDER should fail")
check("reject" in (r.stdout + r.stderr).lower(), "expected an association rejection, got:\n" + r.stdout + r.stderr)
check(not os.listdir(inbox), "refused association left files in the inbox")
log("unknown calling AE refused")

# 2. All samples (CR, DX/SC; JPEG baseline, JPEG-LS, JPEG 2000, implicit/explicit VR).
r = storescu(port, files)
check(r.returncode == 0, "storescu failed:\n" + r.stdout + r.stderr)
wait_until(lambda: len([f for f in os.listdir(out) if f.endswith(".dcm")]) == 12, 120, "12 objects in output-dir")
wait_until(lambda: not os.listdir(inbox), 30, "the inbox to empty")
check(p.stop() == 0, "pipeline failed:\n" + open(p.err).read()[-3000:])

# 3. Each output: in the source's study, referencing its source; SR findings = results rows.
import json
import subprocess
tags = []
for f in sorted(os.listdir(out)):
    j = json.loads(subprocess.run(["dcm2json", os.path.join(out, f)], capture_output=True, text=True, check=True).stdout)
    tags.append(j)


def simplify(ds):
    """DICOM JSON -> Orthanc-style simplified tags (keywords via a small table)."""
    names = {"00080016": "SOPClassUID", "00080018": "SOPInstanceUID", "0020000D": "StudyInstanceUID",
             "0020000E": "SeriesInstanceUID", "0040A730": "ContentSequence", "0040A040": "ValueType",
             "0040A043": "ConceptNameCodeSequence", "00080104": "CodeMeaning", "0040A300": "MeasuredValueSequence",
             "0040A30A": "NumericValue", "0040A168": "ConceptCodeSequence", "0040A160": "TextValue",
             "0040A375": "CurrentRequestedProcedureEvidenceSequence", "00081115": "ReferencedSeriesSequence",
             "00081199": "ReferencedSOPSequence", "00081155": "ReferencedSOPInstanceUID",
             "00082112": "SourceImageSequence", "00100020": "PatientID"}
    out = {}
    for k, v in ds.items():
        if k not in names:
            continue
        vals = v.get("Value", [])
        if v["vr"] == "SQ":
            out[names[k]] = [simplify(i) for i in vals]
        else:
            out[names[k]] = str(vals[0]) if vals else ""
    return out


instances = [simplify(t) for t in tags]
n_sr, n_sc = check_reports(instances, sources, results_by_sop(os.path.join(root, "rows.jsonl")))
log("%d SR + %d SC written, in the right studies, findings match the results rows" % (n_sr, n_sc))
# Patient module copied from the source.
pid = {tag(f, "0008,0018"): tag(f, "0010,0020") for f in files}
for t in instances:
    src_uid = sr_source(t) if t["SOPClassUID"] == SR_CLASS else sc_source(t)
    check(t.get("PatientID", "") == pid[src_uid], "patient ID not copied for %s" % src_uid)

# 4. A leftover in the inbox (as after a crash) is emitted again at start.
shutil.rmtree(out)
os.makedirs(inbox, exist_ok=True)
leftover = make_copies(os.path.join(root, "left"), 1)[0]
shutil.copyfile(leftover, os.path.join(inbox, tag(leftover, "0008,0018") + ".dcm"))
p2 = Pipeline(root, pipeline_desc(port, inbox, "output-dir=" + out), name="restart")
p2.start(port)
wait_until(lambda: os.path.isdir(out) and len([f for f in os.listdir(out) if f.endswith(".dcm")]) == 2, 60,
           "the leftover's SR + SC")
wait_until(lambda: not os.listdir(inbox), 30, "the inbox to empty after the leftover")
check(p2.stop() == 0, "restart pipeline failed")
log("inbox leftover re-emitted and reported")
shutil.rmtree(root)
log("PASS")
