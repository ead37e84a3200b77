# SPDX-License-Identifier: LGPL-2.1-or-later
"""pipelines/pacs-ingest.toml as shipped, with a real model (the bundled demo card): scans sent by
the PACS's AE title are classified by cxrinfer, explained by cxrgradcam, and come back to a real
Orthanc as an SR whose findings are the model's and a colour Secondary Capture of the overlay."""
import os
import shutil
import subprocess

from pacs_util import *

SOURCE = os.environ.get("CXR_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
CXR = os.path.join(os.environ.get("CXR_TOOLS", "build/tools"), "cxr")
root = tmpdir("ingest")
port = free_port()
orthanc = Orthanc(os.path.join(root, "orthanc"), port)
orthanc.start()
try:
    card = os.path.join(SOURCE, "data/models/kermany-efficientnet_b1/model.toml")
    explained = subprocess.run(
        [CXR, "explain", os.path.join(SOURCE, "pipelines/pacs-ingest.toml"), "--set", "model=" + card,
         "--set", "state=" + root, "--set", "pacs=127.0.0.1:%d" % orthanc.dicom, "--set", "port=%d" % port],
        capture_output=True, text=True)
    check(explained.returncode == 0, "cxr explain failed:\n" + explained.stderr)
    desc = explained.stdout.strip()
    check(desc.startswith("gst-launch-1.0 "), "unexpected explain output: " + desc)
    desc = desc[len("gst-launch-1.0 "):]
    # The shipped pipeline, plus a results file beside the sink to compare the SR findings with.
    rows = os.path.join(root, "rows.jsonl")
    desc = desc.replace(" ! cxrdicomsink ", " ! tee name=t ! queue ! cxrdicomsink ", 1) + \
        " t. ! queue ! cxrresultsink location=" + rows
    p = Pipeline(root, desc)
    p.start(port)
    files = make_copies(os.path.join(root, "src"), 6)
    sources = {tag(f, "0008,0018"): tag(f, "0020,000d") for f in files}
    r = storescu(port, files, aet="ORTHANC")
    check(r.returncode == 0, "storescu failed:\n" + r.stdout + r.stderr)
    wait_until(lambda: orthanc.count() >= 12, 180, "12 objects in Orthanc")
    wait_until(lambda: not os.listdir(os.path.join(root, "inbox")), 60, "the inbox to empty")
    instances = orthanc.instances()
    n_sr, n_sc = check_reports(instances, sources, results_by_sop(rows), algorithm="kermany-efficientnet_b1")
    rgb = [t for t in instances if t.get("SOPClassUID") == SC_CLASS and t.get("PhotometricInterpretation") == "RGB"]
    check(len(rgb) == 6, "%d of 6 Secondary Captures are RGB overlays" % len(rgb))
    log("pacs-ingest.toml with the demo model: %d SR + %d RGB SC in the right studies, findings = cxrinfer's"
        % (n_sr, len(rgb)))
    check(p.stop() == 0, "pipeline failed:\n" + open(p.err).read()[-3000:])
finally:
    orthanc.stop()
shutil.rmtree(root)
log("PASS")
