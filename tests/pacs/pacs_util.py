# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared helpers of the PACS tests: free ports, sample copies with fresh UIDs, a throwaway
Orthanc on loopback, the gst-cxr pipeline under test, storescu, and DICOM checks."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD = os.environ.get("CXR_BUILD_ROOT", "build")
SAMPLES = os.path.join(os.environ.get("CXR_SAMPLES", "data/samples"), "dicom")
PACS_RUN = os.path.join(BUILD, "tests", "pacs", "pacs-run")
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
# Small, quick-to-decode scans for the load test.
SMALL_SAMPLES = ["SIIM_CR_jpegbaseline.dcm", "CR-MONO1-10-chest.dcm"]


def log(*args):
    print(*args, flush=True)


def fail(msg):
    log("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout, what, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    fail("timed out after %ss waiting for %s" % (timeout, what))


def tag(path, key):
    """One value of a DICOM file via dcmdump (e.g. key '0008,0018')."""
    out = subprocess.run(["dcmdump", "-q", "-Un", "-s", "+P", key, path], capture_output=True, text=True).stdout
    if "[" not in out:
        return ""
    return out[out.index("[") + 1:out.rindex("]")]


def make_copies(folder, n, names=None):
    """n copies of the samples (round-robin) with fresh SOP Instance UIDs; same studies."""
    os.makedirs(folder, exist_ok=True)
    names = names or sorted(f for f in os.listdir(SAMPLES) if f.endswith(".dcm"))
    out = []
    for i in range(n):
        dst = os.path.join(folder, "%04d-%s" % (i, names[i % len(names)]))
        shutil.copyfile(os.path.join(SAMPLES, names[i % len(names)]), dst)
        os.chmod(dst, 0o644)
        out.append(dst)
    # dcmodify -gin: new SOP Instance UID per file (one call for all: quicker).
    subprocess.run(["dcmodify", "-q", "-nb", "-gin"] + out, check=True)
    return out


# storescu proposes one compressed transfer syntax family per run (plus uncompressed ones).
PROPOSE = {"1.2.840.10008.1.2.4.50": "-xy", "1.2.840.10008.1.2.4.51": "-xx", "1.2.840.10008.1.2.4.70": "-xs",
           "1.2.840.10008.1.2.4.80": "-xt", "1.2.840.10008.1.2.4.81": "-xu", "1.2.840.10008.1.2.4.90": "-xv",
           "1.2.840.10008.1.2.4.91": "-xw", "1.2.840.10008.1.2.5": "-xr"}


def storescu_cmd(port, files, aet="SENDER", aec="GSTCXR"):
    """storescu command lines for files: one per compressed transfer syntax among them."""
    groups = {}
    for f in files:
        groups.setdefault(PROPOSE.get(tag(f, "0002,0010"), "-x="), []).append(f)
    flags = sorted(groups)
    if len(flags) > 1 and "-x=" in groups:
        # Uncompressed files ride along with the first compressed group.
        groups[flags[0] if flags[0] != "-x=" else flags[1]] += groups.pop("-x=")
    return [["storescu", "-R", flag, "-aet", aet, "-aec", aec, "127.0.0.1", str(port)] + fs
            for flag, fs in sorted(groups.items())]


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def storescu(port, files, aet="SENDER", aec="GSTCXR"):
    rc, out, err = 0, "", ""
    for cmd in storescu_cmd(port, files, aet, aec):
        r = subprocess.run(cmd, capture_output=True, text=True)
        rc = rc or r.returncode
        out += r.stdout
        err += r.stderr
    return Result(rc, out, err)


class Orthanc:
    """A private Orthanc: own ports and storage, loopback only, knows gst-cxr's SCP."""

    def __init__(self, root, scp_port):
        self.root = root
        self.http = free_port()
        self.dicom = free_port()
        os.makedirs(os.path.join(root, "db"), exist_ok=True)
        self.config = os.path.join(root, "orthanc.json")
        with open(self.config, "w") as f:
            json.dump({
                "Name": "cxr-test", "StorageDirectory": os.path.join(root, "db"),
                "IndexDirectory": os.path.join(root, "db"), "HttpPort": self.http, "DicomPort": self.dicom,
                "DicomAet": "ORTHANC", "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
                "HttpServerEnabled": True, "DicomServerEnabled": True, "Plugins": [],
                "DicomModalities": {"gstcxr": ["GSTCXR", "127.0.0.1", scp_port]},
                "DicomCheckCalledAETitle": False, "DicomAlwaysAllowStore": True, "StableAge": 1,
                "ConcurrentJobs": 1, "HttpThreadsCount": 4, "DicomThreadsCount": 4,
            }, f)
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.root, "orthanc.log"), "ab")
        self.proc = subprocess.Popen(["Orthanc", self.config], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self._up(), 60, "Orthanc to start")

    def _up(self):
        if self.proc.poll() is not None:
            fail("Orthanc exited (see %s/orthanc.log)" % self.root)
        try:
            self.get("/system")
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http, path), timeout=10) as r:
            return json.loads(r.read())

    def post(self, path, body):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.http, path), data=body, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def count(self):
        return self.get("/statistics")["CountInstances"]

    def instances(self):
        """simplified tags of every stored instance."""
        return [self.get("/instances/%s/simplified-tags" % i) for i in self.get("/instances")]


class Pipeline:
    """The pipeline under test, run by pacs-run (EOS on SIGINT, messages on stdout)."""

    def __init__(self, root, desc, name="pipeline"):
        self.out = os.path.join(root, name + ".out")
        self.err = os.path.join(root, name + ".err")
        self.desc = desc
        self.proc = None

    def start(self, scp_port=None):
        env = dict(os.environ)
        self.proc = subprocess.Popen([PACS_RUN, self.desc], stdout=open(self.out, "ab"),
                                     stderr=open(self.err, "ab"), env=env)
        if scp_port:
            wait_until(lambda: self._listening(scp_port), 30, "the storage SCP to listen")

    def _listening(self, port):
        if self.proc.poll() is not None:
            fail("pipeline exited early:\n" + open(self.err).read())
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def stop(self, timeout=60):
        """EOS, then wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail("pipeline did not stop on EOS:\n" + open(self.err).read()[-3000:])
        return self.proc.returncode

    def crash(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def messages(self, name):
        rows = []
        for line in open(self.out, errors="replace"):
            if line.startswith(name + ","):
                rows.append(line.strip())
        return rows


def pipeline_desc(port, inbox, sink, results=None, allowed="SENDER,ORTHANC", holdback=False, max_assoc=4):
    """receive -> decode -> results -> [tee -> cxrresultsink] -> cxrdicomsink `sink` properties."""
    src = ("cxrdicomsrc port=%d ae-title=GSTCXR allowed-callers=%s max-associations=%d inbox=%s"
           % (port, allowed, max_assoc, inbox))
    # holdback: keeps every received scan in a queue, i.e. between receive and send.
    hold = " ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 min-threshold-buffers=100000" if holdback else ""
    mid = " ! cxrdecode ! identity name=fakeresults"
    if results:
        return (src + hold + mid + " ! tee name=t ! queue ! cxrdicomsink " + sink +
                " t. ! queue ! cxrresultsink location=" + results)
    return src + hold + mid + " ! cxrdicomsink " + sink


def results_by_sop(results_path):
    """cxrresultsink rows keyed by the source SOP Instance UID (the inbox file name)."""
    rows = {}
    for line in open(results_path):
        r = json.loads(line)
        rows[os.path.basename(r["path"])[:-4]] = r
    return rows


def sr_findings(tags):
    """{class: (probability, decision)} from an SR's simplified content tree."""
    out = {}
    for item in tags.get("ContentSequence", []):
        if item.get("ValueType") != "CONTAINER":
            continue
        name = item["ConceptNameCodeSequence"][0]["CodeMeaning"]
        prob = dec = None
        for child in item.get("ContentSequence", []):
            if child.get("ValueType") == "NUM":
                prob = float(child["MeasuredValueSequence"][0]["NumericValue"])
            if child.get("ValueType") == "CODE":
                dec = child["ConceptCodeSequence"][0]["CodeMeaning"] == "Yes"
        out[name] = (prob, dec)
    return out


def sr_text(tags, meaning):
    for item in tags.get("ContentSequence", []):
        if item.get("ValueType") == "TEXT" and item["ConceptNameCodeSequence"][0]["CodeMeaning"] == meaning:
            return item.get("TextValue")
    return None


def sr_source(tags):
    ev = tags["CurrentRequestedProcedureEvidenceSequence"][0]["ReferencedSeriesSequence"][0]
    return ev["ReferencedSOPSequence"][0]["ReferencedSOPInstanceUID"]


def sc_source(tags):
    return tags["SourceImageSequence"][0]["ReferencedSOPInstanceUID"]


def check_reports(instances, sources, results=None, algorithm="fake-model"):
    """For each source (sop uid -> study uid): exactly one SR and one SC, in its study,
    pointing at it; SR findings equal the results rows."""
    srs, scs = {}, {}
    for t in instances:
        if t.get("SOPClassUID") == SR_CLASS:
            srs.setdefault(sr_source(t), []).append(t)
        elif t.get("SOPClassUID") == SC_CLASS and "SourceImageSequence" in t:
            scs.setdefault(sc_source(t), []).append(t)
    for sop, study in sources.items():
        check(len(srs.get(sop, [])) == 1, "%s: %d SRs (want 1)" % (sop, len(srs.get(sop, []))))
        check(len(scs.get(sop, [])) == 1, "%s: %d SCs (want 1)" % (sop, len(scs.get(sop, []))))
        sr, sc = srs[sop][0], scs[sop][0]
        check(sr["StudyInstanceUID"] == study and sc["StudyInstanceUID"] == study, "%s: not in study %s" % (sop, study))
        check(sr["SeriesInstanceUID"] != sc["SeriesInstanceUID"], "%s: SR and SC share a series" % sop)
        check("not for diagnostic use" in (sr_text(sr, "Comment") or "").lower(), "%s: no disclaimer" % sop)
        check(sr_text(sr, "Algorithm Name") == algorithm, "%s: algorithm name %r" % (sop, sr_text(sr, "Algorithm Name")))
        if results is not None:
            row = results[sop]
            got = sr_findings(sr)
            check(set(got) == set(row["classes"]), "%s: classes %s vs %s" % (sop, sorted(got), row["classes"]))
            for i, c in enumerate(row["classes"]):
                p, d = got[c]
                check(abs(p - row["probabilities"][i]) < 1e-5, "%s/%s: p %s vs %s" % (sop, c, p, row["probabilities"][i]))
                pred = row.get("predicted")
                want = c in pred if isinstance(pred, list) else c == pred
                check(d == want, "%s/%s: decision %s, results say predicted=%s" % (sop, c, d, pred))
    extra = set(srs) - set(sources)
    check(not extra, "reports for unknown sources: %s" % extra)
    return len(srs), len(scs)


def tmpdir(name):
    return tempfile.mkdtemp(prefix="cxr-pacs-%s-" % name)
