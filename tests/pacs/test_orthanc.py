# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real Orthanc on loopback: SR + SC arrive for each scan in the right study with the results'
findings; Orthanc itself can C-STORE to gst-cxr; an unknown calling AE is refused; with Orthanc
stopped the reports wait in the outbox and arrive once it is back."""
import os
import shutil

from pacs_util import *

root = tmpdir("orthanc")
inbox, outbox, src = (os.path.join(root, d) for d in ("inbox", "outbox", "src"))
port = free_port()
orthanc = Orthanc(os.path.join(root, "orthanc"), port)
orthanc.start()
try:
    sink = ("peer=127.0.0.1:%d peer-ae-title=ORTHANC ae-title=GSTCXR outbox=%s retry-initial=200 retry-max=1000"
            % (orthanc.dicom, outbox))
    rows = os.path.join(root, "rows.jsonl")
    p = Pipeline(root, pipeline_desc(port, inbox, sink, results=rows))
    p.start(port)

    # 1. Unknown calling AE: refused, nothing stored anywhere.
    files = make_copies(src, 6)
    r = storescu(port, files[:1], aet="INTRUDER")
    check(r.returncode != 0 and "reject" in (r.stdout + r.stderr).lower(), "INTRUDER was not refused")
    log("unknown calling AE refused")

    # 2. Arrival: 6 scans in, 6 SR + 6 SC in Orthanc.
    sources = {tag(f, "0008,0018"): tag(f, "0020,000d") for f in files}
    r = storescu(port, files)
    check(r.returncode == 0, "storescu failed:\n" + r.stdout + r.stderr)
    wait_until(lambda: orthanc.count() >= 12, 120, "12 objects in Orthanc")
    wait_until(lambda: not os.listdir(inbox), 30, "the inbox to empty")
    wait_until(lambda: not [f for f in os.listdir(outbox) if f.endswith(".dcm")], 30, "the outbox to empty")
    n_sr, n_sc = check_reports(orthanc.instances(), sources, results_by_sop(rows))
    log("Orthanc has %d SR + %d SC, in the right studies, findings = results rows" % (n_sr, n_sc))

    # 3. Orthanc pushes a scan to gst-cxr (its DicomModalities entry) and gets the reports back.
    extra = make_copies(os.path.join(root, "extra"), 1, ["SIIM_CR_jpegbaseline.dcm"])[0]
    up = orthanc.post("/instances", open(extra, "rb").read())
    orthanc.post("/modalities/gstcxr/store", up["ID"].encode())
    sources[tag(extra, "0008,0018")] = tag(extra, "0020,000d")
    wait_until(lambda: orthanc.count() >= 12 + 3, 60, "reports for the scan Orthanc sent")
    instances = [t for t in orthanc.instances() if t.get("SOPInstanceUID") != tag(extra, "0008,0018")]
    check_reports(instances, sources, results_by_sop(rows))
    log("Orthanc C-STORE to gst-cxr: reports came back")

    # 4. Orthanc down: reports wait in the outbox; they arrive when it is back.
    orthanc.stop()
    more = make_copies(os.path.join(root, "more"), 3, ["CR-MONO1-10-chest.dcm", "SIIM_CR_jpegbaseline.dcm"])
    r = storescu(port, more)
    check(r.returncode == 0, "storescu failed:\n" + r.stdout + r.stderr)
    wait_until(lambda: len([f for f in os.listdir(outbox) if f.endswith(".dcm")]) == 6, 60, "6 objects in the outbox")
    log("Orthanc down: 6 objects wait in the outbox")
    orthanc.start()
    wait_until(lambda: not [f for f in os.listdir(outbox) if f.endswith(".dcm")], 60, "the outbox to drain")
    for f in more:
        sources[tag(f, "0008,0018")] = tag(f, "0020,000d")
    instances = [t for t in orthanc.instances() if t.get("SOPInstanceUID") != tag(extra, "0008,0018")]
    check_reports(instances, sources, results_by_sop(rows))
    log("Orthanc back: the outbox drained, every scan has exactly one SR and one SC")
    check(p.stop() == 0, "pipeline failed:\n" + open(p.err).read()[-3000:])
    # Privacy: no patient IDs in what the pipeline printed (debug-phi is off).
    text = open(p.out).read() + open(p.err).read()
    for f in files:
        pid = tag(f, "0010,0020")
        check(not pid or len(pid) < 4 or pid not in text, "patient ID %s appears in the pipeline output" % pid)
finally:
    orthanc.stop()
shutil.rmtree(root)
log("PASS")
