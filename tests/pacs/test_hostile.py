# SPDX-License-Identifier: LGPL-2.1-or-later
"""cxrdicomsrc against hostile peers, with a raw upper-layer client (rawdicom.py) and storescu as
the honest one: sequences nested 200000 deep, PDUs declaring 4 GB, a peer that aborts in the
middle of a dataset, connections that never speak, more associations than max-associations.
After each, the listener still serves an honest sender, nothing half-received is ever emitted,
and patient names and IDs never reach the logs or bus messages at the default debug level."""
import json
import os
import socket
import struct
import time

from pacs_util import *
import rawdicom

root = tmpdir("hostile")
inbox = os.path.join(root, "inbox")
port = free_port()
results = os.path.join(root, "rows.jsonl")
SECRET_NAME, SECRET_ID = "Hostile^Secretname", "SECRETID-4711"
p = Pipeline(root, pipeline_desc(port, inbox, "output-dir=" + os.path.join(root, "out"), results=results,
                                 max_assoc=2))
p.start(port)


def rss_mb():
    for line in open("/proc/%d/status" % p.proc.pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def alive():
    check(p.proc.poll() is None, "the pipeline died:\n" + open(p.err, errors="replace").read()[-3000:])


def honest_store(uid, name="Doe^Jane", pid="P1"):
    """One C-STORE by the raw client, well-formed; returns its status."""
    peer = rawdicom.Peer(port)
    check(peer.associate() == 2, "association refused")
    status = peer.store(uid, rawdicom.dataset(uid, name, pid))
    peer.release()
    peer.close()
    return status


def emitted():
    rows = [json.loads(line) for line in open(results)] if os.path.exists(results) else []
    return {os.path.basename(r.get("path", "")).replace(".dcm", "") for r in rows}


base_rss = rss_mb()

# 0. The raw client itself works: an honest store, with PHI that must stay out of the logs.
check(honest_store("1.2.826.0.1.3680043.10.1.1", SECRET_NAME, SECRET_ID) == 0, "honest store failed")
wait_until(lambda: "1.2.826.0.1.3680043.10.1.1" in emitted(), 60, "the honest instance to be emitted")
log("raw client: an honest C-STORE is received and emitted")

# 1. Sequences nested 200000 deep (4 MB): refused with an out-of-resources status, not a crash.
peer = rawdicom.Peer(port)
check(peer.associate() == 2, "association refused")
deep_uid = "1.2.826.0.1.3680043.10.1.2"
status = peer.store(deep_uid, rawdicom.dataset(deep_uid, extra=rawdicom.nested_sequences(200000)))
peer.close()
alive()
check(status is not None and status & 0xFF00 == 0xA700, "nested dataset: status %r, expected 0xA7xx" % status)
log("200000 nested sequences: C-STORE answered 0x%04X, listener alive" % status)

# 2. PDUs that declare huge lengths: an A-ASSOCIATE-RQ, then a P-DATA-TF in an association.
for kind in (1, 4):
    peer = rawdicom.Peer(port)
    if kind == 4:
        check(peer.associate() == 2, "association refused")
    peer.send(struct.pack(">BBI", kind, 0, 0xFFFFFFF0) + bytes(64))
    check(peer.closed_within(60), "a PDU declaring 4 GB (type %d) left the connection open" % kind)
    peer.close()
    alive()
check(rss_mb() < base_rss + 512, "memory grew from %d to %d MB after huge PDU lengths" % (base_rss, rss_mb()))
log("PDUs declaring 4 GB: connection closed, memory %d -> %d MB" % (base_rss, rss_mb()))

# 3. A peer that aborts (or vanishes) in the middle of a dataset: nothing of it is emitted.
for how in ("abort", "close"):
    half_uid = "1.2.826.0.1.3680043.10.1.3." + str(len(how))
    data = rawdicom.dataset(half_uid)
    peer = rawdicom.Peer(port)
    check(peer.associate() == 2, "association refused")
    peer.send(rawdicom.pdata(1, 0x03, rawdicom.c_store_rq(rawdicom.SC_CLASS, half_uid)))
    peer.send(rawdicom.pdata(1, 0x00, data[:len(data) // 2]))
    time.sleep(0.5)
    if how == "abort":
        peer.abort()
    peer.close()
    alive()
    check(honest_store("1.2.826.0.1.3680043.10.1.4." + str(len(how))) == 0, "honest store after an " + how + " failed")
    wait_until(lambda: "1.2.826.0.1.3680043.10.1.4." + str(len(how)) in emitted(), 60, "the next instance")
    check(half_uid not in emitted(), "a half-received instance (%s) was emitted" % how)
    check(not [f for f in os.listdir(inbox) if half_uid in f and not f.startswith(".")],
          "a half-received instance (%s) is in the inbox" % how)
log("aborted and vanished senders: nothing half-received emitted or left in the inbox")

# 4. Connections that never send a byte do not stop an honest sender.
silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
time.sleep(1)
r = storescu(port, make_copies(os.path.join(root, "src"), 1))
check(r.returncode == 0, "storescu beside 3 silent connections failed:\n" + r.stdout + r.stderr)
for s in silent:
    s.close()
alive()
log("3 silent connections: storescu still served")

# 5. More associations than max-associations (2): the third is refused, not queued.
held = [rawdicom.Peer(port) for _ in range(2)]
for h in held:
    check(h.associate() == 2, "association within max-associations refused")
extra = rawdicom.Peer(port, timeout=20)
answer = extra.associate()
check(answer != 2, "a third association was accepted with max-associations=2")
extra.close()
for h in held:
    h.release()
    h.close()
time.sleep(1)
check(honest_store("1.2.826.0.1.3680043.10.1.5") == 0, "store after the held associations ended failed")
log("max-associations=2: a third association %s" % ("rejected" if answer == 3 else "closed"))

# 6. No patient name or ID in the logs or messages at the default debug level.
check(p.stop() == 0, "pipeline failed:\n" + open(p.err, errors="replace").read()[-3000:])
for f in (p.out, p.err):
    text = open(f, errors="replace").read()
    for secret in (SECRET_NAME, SECRET_ID, SECRET_NAME.replace("^", " ")):
        check(secret not in text, "%s appears in %s" % (secret, f))
log("no patient name or ID in the pipeline's output")

# 7. timeout=3: an association that never sends is closed. min-free-space above what the disk
# has: a C-STORE is answered 0xA700 and nothing reaches the inbox.
inbox2 = os.path.join(root, "inbox2")
desc = pipeline_desc(port, inbox2, "output-dir=" + os.path.join(root, "out2"))
desc = desc.replace("cxrdicomsrc ", "cxrdicomsrc timeout=3 min-free-space=%d " % (1 << 62), 1)
p2 = Pipeline(root, desc, name="strict")
p2.start(port)
peer = rawdicom.Peer(port)
check(peer.associate() == 2, "association refused")
t0 = time.time()
check(peer.closed_within(30), "a silent association stayed open 30 s with timeout=3")
waited = time.time() - t0
check(waited < 15, "a silent association was closed after %.1f s with timeout=3" % waited)
peer.close()
log("timeout=3: a silent association closed after %.1f s" % waited)
full_uid = "1.2.826.0.1.3680043.10.1.6"
peer = rawdicom.Peer(port)
check(peer.associate() == 2, "association refused")
status = peer.store(full_uid, rawdicom.dataset(full_uid))
peer.release()
peer.close()
check(status is not None and status & 0xFF00 == 0xA700, "full inbox: status %r, expected 0xA7xx" % status)
check(not os.listdir(inbox2), "a refused instance reached the inbox: %s" % os.listdir(inbox2))
check(p2.stop() == 0, "pipeline failed:\n" + open(p2.err, errors="replace").read()[-3000:])
log("min-free-space above the free space: C-STORE answered 0x%04X, inbox empty" % status)
log("PASS")
