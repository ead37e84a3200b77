# SPDX-License-Identifier: LGPL-2.1-or-later
"""kill -9 of the pipeline between receive and send loses nothing: scans acknowledged to the
sender are in the inbox, reports already made are in the outbox; after a restart every scan
reaches Orthanc as exactly one SR and one SC."""
import os
import shutil

from pacs_util import *

root = tmpdir("crash")
inbox, outbox, src = (os.path.join(root, d) for d in ("inbox", "outbox", "src"))
port = free_port()
orthanc = Orthanc(os.path.join(root, "orthanc"), port)
orthanc.start()
try:
    sink = ("peer=127.0.0.1:%d peer-ae-title=ORTHANC outbox=%s retry-initial=200 retry-max=1000"
            % (orthanc.dicom, outbox))
    files = make_copies(src, 6)
    sources = {tag(f, "0008,0018"): tag(f, "0020,000d") for f in files}

    # Run 1 holds every scan in a queue after receiving it: the crash lands between receive
    # and send for all of them.
    p = Pipeline(root, pipeline_desc(port, inbox, sink, holdback=True), name="run1")
    p.start(port)
    r = storescu(port, files)
    check(r.returncode == 0, "storescu failed:\n" + r.stdout + r.stderr)
    p.crash()
    check(len([f for f in os.listdir(inbox) if f.endswith(".dcm")]) == 6, "the inbox should hold the 6 scans")
    check(orthanc.count() == 0, "nothing should have been sent yet")
    log("killed with 6 scans received and acknowledged, none sent")

    # Run 2 (normal pipeline): leftovers are processed.
    p = Pipeline(root, pipeline_desc(port, inbox, sink), name="run2")
    p.start(port)
    wait_until(lambda: orthanc.count() >= 12, 120, "12 objects in Orthanc")
    wait_until(lambda: not os.listdir(inbox), 30, "the inbox to empty")
    check(p.stop() == 0, "run 2 failed:\n" + open(p.err).read()[-3000:])
    check_reports(orthanc.instances(), sources)
    log("restart: all 6 leftovers processed, one SR + one SC each")

    # Crash with reports in the outbox and Orthanc down: they are sent after the restart.
    orthanc.stop()
    more = make_copies(os.path.join(root, "more"), 2, ["SIIM_CR_jpegbaseline.dcm"])
    p = Pipeline(root, pipeline_desc(port, inbox, sink), name="run3")
    p.start(port)
    check(storescu(port, more).returncode == 0, "storescu failed")
    wait_until(lambda: len([f for f in os.listdir(outbox) if f.endswith(".dcm")]) == 4, 60, "4 objects in the outbox")
    p.crash()
    orthanc.start()
    p = Pipeline(root, pipeline_desc(port, inbox, sink), name="run4")
    p.start(port)
    wait_until(lambda: orthanc.count() >= 12 + 4, 60, "the outbox's objects in Orthanc")
    check(p.stop() == 0, "run 4 failed")
    for f in more:
        sources[tag(f, "0008,0018")] = tag(f, "0020,000d")
    check_reports(orthanc.instances(), sources)
    log("crash with a full outbox: delivered after restart, no duplicates")
finally:
    orthanc.stop()
shutil.rmtree(root)
log("PASS")
