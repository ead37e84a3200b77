# SPDX-License-Identifier: LGPL-2.1-or-later
"""Load: N instances (default 200) over 4 concurrent associations (4 storescu processes), all
processed exactly once and delivered to Orthanc; prints receive and end-to-end throughput.
CXR_PACS_LOAD=n changes N."""
import os
import shutil
import subprocess
import time

from pacs_util import *

n = int(os.environ.get("CXR_PACS_LOAD", "200"))
senders = 4
root = tmpdir("load")
inbox, outbox, src = (os.path.join(root, d) for d in ("inbox", "outbox", "src"))
port = free_port()
orthanc = Orthanc(os.path.join(root, "orthanc"), port)
orthanc.start()
try:
    files = make_copies(src, n, SMALL_SAMPLES)
    sources = {tag(f, "0008,0018"): tag(f, "0020,000d") for f in files}
    check(len(sources) == n, "copies need distinct SOP Instance UIDs")
    sink = "peer=127.0.0.1:%d peer-ae-title=ORTHANC outbox=%s retry-initial=200 retry-max=1000" % (orthanc.dicom, outbox)
    rows = os.path.join(root, "rows.jsonl")
    p = Pipeline(root, pipeline_desc(port, inbox, sink, results=rows, max_assoc=senders))
    p.start(port)
    t0 = time.time()
    # -xy: JPEG baseline and uncompressed contexts, enough for SMALL_SAMPLES.
    procs = [subprocess.Popen(["storescu", "-R", "-xy", "-aet", "SENDER", "-aec", "GSTCXR", "127.0.0.1", str(port)] +
                              files[i::senders], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for i in range(senders)]
    for pr in procs:
        out = pr.communicate()[0].decode(errors="replace")
        check(pr.returncode == 0, "a storescu failed:\n" + out[-2000:])
    t_recv = time.time() - t0
    wait_until(lambda: orthanc.count() >= 2 * n, 600, "%d objects in Orthanc" % (2 * n), interval=1)
    wait_until(lambda: not [f for f in os.listdir(outbox) if f.endswith(".dcm")], 60, "the outbox to empty")
    t_all = time.time() - t0
    check(not os.listdir(inbox), "the inbox is not empty")
    check(p.stop() == 0, "pipeline failed:\n" + open(p.err).read()[-3000:])
    lines = open(rows).read().splitlines()
    check(len(lines) == n, "%d result rows for %d scans (each exactly once)" % (len(lines), n))
    check_reports(orthanc.instances(), sources, results_by_sop(rows))
    mb = sum(os.path.getsize(f) for f in files) / 1e6
    log("LOAD: %d instances (%.1f MB) over %d associations: received in %.1f s (%.1f inst/s, %.1f MB/s); "
        "%d SR + %d SC in Orthanc after %.1f s (%.1f scans/s end to end)"
        % (n, mb, senders, t_recv, n / t_recv, mb / t_recv, n, n, t_all, n / t_all))
finally:
    orthanc.stop()
shutil.rmtree(root)
log("PASS")
