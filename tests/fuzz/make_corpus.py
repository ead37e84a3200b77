#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Seeds are small on purpose (libFuzzer mutates small inputs thousands of times faster than a
full-size scan): a few pixels in every variant the readers handle. Needs Pillow, numpy, pydicom
and torch (python3-pil, python3-numpy, python3-pydicom, python3-torch) and DCMTK's dcmcjpeg,
dcmcjpls and dcmcrle. Run it again after adding a variant; the output is deterministic apart from
what the codecs embed."""
import io
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def out(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def ramp(h, w, hi, dtype):
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 7 + y * 13) % (hi + 1)).astype(dtype)


def png_seeds():
    def save(name, img, **kw):
        b = io.BytesIO()
        img.save(b, "PNG", **kw)
        out("png", name, b.getvalue())
    save("gray8.png", Image.fromarray(ramp(9, 13, 255, np.uint8)))
    save("gray8-one-row.png", Image.fromarray(ramp(1, 17, 255, np.uint8)))
    save("gray16.png", Image.fromarray(ramp(7, 5, 65535, np.uint16)))
    save("gray1.png", Image.fromarray(ramp(6, 11, 1, np.uint8) > 0))
    save("rgb.png", Image.fromarray(np.dstack([ramp(5, 6, 255, np.uint8)] * 3)))
    save("rgba.png", Image.fromarray(np.dstack([ramp(5, 6, 255, np.uint8)] * 4), "RGBA"))
    save("gray-alpha.png", Image.fromarray(np.dstack([ramp(5, 6, 255, np.uint8)] * 2), "LA"))
    save("palette.png", Image.fromarray(ramp(6, 6, 255, np.uint8)).convert("P"))
    save("interlaced.png", Image.fromarray(ramp(10, 10, 255, np.uint8)), optimize=False, interlace=1)
    save("gray2-bits.png", Image.fromarray(ramp(4, 9, 3, np.uint8)), bits=2)


def jpeg_seeds():
    def save(name, img, **kw):
        b = io.BytesIO()
        img.save(b, "JPEG", **kw)
        out("jpeg", name, b.getvalue())
    g = Image.fromarray(ramp(16, 24, 255, np.uint8))
    save("gray.jpg", g, quality=50)
    save("rgb.jpg", Image.fromarray(np.dstack([ramp(16, 16, 255, np.uint8)] * 3)), quality=50)
    save("progressive.jpg", g, quality=50, progressive=True)
    save("odd-size.jpg", Image.fromarray(ramp(9, 7, 255, np.uint8)), quality=90)
    save("cmyk.jpg", Image.fromarray(np.dstack([ramp(8, 8, 255, np.uint8)] * 4), "CMYK"), quality=50)


def j2k_seeds():
    for name, arr, kw in [("gray8.j2k", ramp(8, 8, 255, np.uint8), {}),
                          ("gray16.j2k", ramp(8, 6, 4095, np.uint16), {}),
                          ("gray8.jp2", ramp(8, 8, 255, np.uint8), {}),
                          ("tiled.j2k", ramp(16, 16, 255, np.uint8), {"tile_size": (8, 8)})]:
        b = io.BytesIO()
        mode = "I;16" if arr.dtype == np.uint16 else "L"
        Image.fromarray(arr, mode).save(b, "JPEG2000", irreversible=False, **kw)
        out("j2k", name, b.getvalue())


def dicom_seeds(tmp):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

    def make(arr, bits_stored, signed=False, photometric="MONOCHROME2", xfer=ExplicitVRLittleEndian, extra=None):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
        ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
        ds.file_meta.TransferSyntaxUID = xfer
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
        ds.SOPInstanceUID = "1.2.3.4"
        ds.PatientID = "FUZZ"
        ds.Modality = "CR"
        ds.Rows, ds.Columns = arr.shape[:2]
        ds.SamplesPerPixel = 1 if arr.ndim == 2 else arr.shape[2]
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = arr.dtype.itemsize * 8
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 1 if signed else 0
        if ds.SamplesPerPixel == 3:
            ds.PlanarConfiguration = 0
        for k, v in (extra or {}).items():
            setattr(ds, k, v)
        ds.PixelData = arr.tobytes()
        ds.is_little_endian = True
        ds.is_implicit_VR = xfer == ImplicitVRLittleEndian
        b = io.BytesIO()
        ds.save_as(b, write_like_original=False)
        return b.getvalue()

    seeds = {
        "mono2-8.dcm": make(ramp(6, 7, 255, np.uint8), 8),
        "mono1-12.dcm": make(ramp(5, 6, 4095, np.uint16), 12, photometric="MONOCHROME1"),
        "implicit-16.dcm": make(ramp(4, 5, 65535, np.uint16), 16, xfer=ImplicitVRLittleEndian),
        "signed-12.dcm": make((ramp(5, 5, 4095, np.int16) - 2048).astype(np.int16), 12, signed=True,
                              extra={"RescaleSlope": "2", "RescaleIntercept": "-1024"}),
        "window-10.dcm": make(ramp(4, 6, 1023, np.uint16), 10,
                              extra={"WindowCenter": "512", "WindowWidth": "300", "VOILUTFunction": "SIGMOID"}),
        "rgb.dcm": make(np.dstack([ramp(4, 4, 255, np.uint8)] * 3), 8, photometric="RGB"),
    }
    # A VOI LUT sequence and a modality LUT sequence.
    lut = Dataset()
    lut.add_new(0x00283002, "US", [16, 0, 12])  # LUT Descriptor
    lut.add_new(0x00283006, "US", list(range(0, 4096, 256)))  # LUT Data
    seeds["voi-lut.dcm"] = make(ramp(4, 4, 15, np.uint16), 12, extra={"VOILUTSequence": pydicom.Sequence([lut])})
    mlut = Dataset()
    mlut.add_new(0x00283002, "US", [16, 0, 8])
    mlut.add_new(0x00283006, "US", list(range(16)))
    seeds["modality-lut.dcm"] = make(ramp(4, 4, 15, np.uint16), 12,
                                     extra={"ModalityLUTSequence": pydicom.Sequence([mlut])})
    for name, data in seeds.items():
        out("dicom", name, data)
    # Compressed transfer syntaxes by DCMTK's own encoders.
    src8 = os.path.join(tmp, "src8.dcm")
    src12 = os.path.join(tmp, "src12.dcm")
    with open(src8, "wb") as f:
        f.write(make(ramp(16, 16, 255, np.uint8), 8))
    with open(src12, "wb") as f:
        f.write(make(ramp(16, 16, 4095, np.uint16), 12))
    for name, cmd in [("jpeg-baseline.dcm", ["dcmcjpeg", "+eb", src8]),
                      ("jpeg-lossless.dcm", ["dcmcjpeg", "+e1", src12]),
                      ("jpeg-extended.dcm", ["dcmcjpeg", "+ee", src12]),
                      ("jpegls.dcm", ["dcmcjpls", src12]),
                      ("rle.dcm", ["dcmcrle", src12])]:
        dst = os.path.join(tmp, name)
        subprocess.run(cmd + [dst], check=True)
        with open(dst, "rb") as f:
            out("dicom", name, f.read())
    # JPEG 2000, encapsulated by pydicom.
    from pydicom.encaps import encapsulate
    b = io.BytesIO()
    Image.fromarray(ramp(8, 8, 4095, np.uint16), "I;16").save(b, "JPEG2000", irreversible=False)
    ds = pydicom.dcmread(src12)
    ds.Rows = ds.Columns = 8
    ds.PixelData = encapsulate([b.getvalue()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
    ds.is_implicit_VR = False
    bb = io.BytesIO()
    ds.save_as(bb)
    out("dicom", "j2k.dcm", bb.getvalue())


def weights_seeds(tmp):
    import collections
    import torch
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.arange(8, dtype=torch.float32).reshape(2, 1, 2, 2)
    sd["bn.num_batches_tracked"] = torch.tensor(3)
    sd["fc.bias"] = torch.zeros(3, dtype=torch.float16)
    path = os.path.join(tmp, "small.pt")
    torch.save(sd, path)
    with open(path, "rb") as f:
        out("weights", "state-dict.pt", f.read())
    torch.save({"state_dict": sd, "epoch": 3}, path)
    with open(path, "rb") as f:
        out("weights", "checkpoint.pt", f.read())
    import zipfile
    with zipfile.ZipFile(os.path.join(ROOT, "weights", "state-dict.pt")) as z:
        for n in z.namelist():
            if n.endswith("data.pkl"):
                out("weights", "state-dict.pkl", z.read(n))
    with zipfile.ZipFile(os.path.join(ROOT, "weights", "checkpoint.pt")) as z:
        for n in z.namelist():
            if n.endswith("data.pkl"):
                out("weights", "checkpoint.pkl", z.read(n))


def text_seeds():
    out("card", "multiclass.toml", """[model]
name = "covid"
architecture = "efficientnet_b1"
task = "multiclass"
classes = ["normal", "covid", "viral"]
weights = "covid.pth"

[input]
size = [255, 255]
channels = 3
mean = [0.4955]
std = [0.2892]

[gradcam]
target-layer = "features.8"

[about]
data = "COVID-19 Radiography"
epochs = 12
f1 = 0.93
""")
    out("card", "multilabel.toml", """[model]
architecture = "resnet34"
task = "multilabel"
classes = ["Atelectasis", "Effusion"]
weights = "/abs/nih.pt"
thresholds = [0.3, 0.6]

[input]
size = [224, 224]
channels = 1
mean = 0.5
std = 0.25
""")
    out("pipeline", "classify.toml", """description = "classify a folder"
[variables]
input = "data/samples/covid"
size = 256

[[element]]
factory = "cxrscansrc"
location = "${input}"

[[element]]
factory = "cxrdecode"

[[element]]
caps = "video/x-raw,format=GRAY8"

[[element]]
factory = "tee"
name = "t"

[[element]]
factory = "cxrresultsink"
location = "rows-${size}.jsonl"
classes = ["a", "b", 3, true]

[[element]]
from = "t"
factory = "queue"
to = "t"
""")
    out("pipeline", "include.toml", """[variables]
out = "$${literal}/${size}"

[[element]]
include = "inc.toml"

[[element]]
factory = "fakesink"
location = "${out}"
""")
    out("study", "study.toml", """description = "two runs and a sweep"
output = "out/study"
[variables]
data = "/data/covid"

[[run]]
name = "resnet"
pipeline = "train.toml"
model = "ResNet-34"
dataset = "COVID"
variables = { learning-rate = 0.01, data = "${data}/x" }

[[sweep]]
name = "ablation"
pipeline = "train.toml"
param = "learning-rate"
values = [0.001, 0.01, "0.1", 1]
""")
    out("csv-index", "default.csv", "\x00path,label,patient_id,split\na.png,normal,p1,train\n\"b,c.png\",covid,p2,val\nd.png,viral,p1,test\n")
    out("csv-index", "nih.csv", "\x01Image Index,Finding Labels,Patient ID\n1.png,Atelectasis|Effusion,7\n2.png,No Finding,8\n")
    out("csv-index", "onehot.csv", "\x02path,Atelectasis,Effusion,No Finding\r\nx.png,1,0,0\r\ny.png,0.0,1.0,0\r\n")
    out("csv-index", "columns.csv", "\x03file,label,Patient ID,fold\n/abs/x.dcm,pneumonia,1,train\nrel/y.dcm,normal,2,val\n")
    out("csv-index", "subset.csv", "\x04\xef\xbb\xbfpath,label\na.png,normal\nb.png,other\nc.png,covid\n")
    out("runs", "summary.json", '\x00{"architecture":"resnet34","task":"multiclass","classes":["a","b"],"best_epoch":2,'
        '"epochs_completed":3,"train_seconds":12.5,"test":{"f1":0.9,"accuracy":0.91,"macro_auroc":0.95,'
        '"class_f1":[0.8,null],"confusion":[[5,1],[0,4]],"class_confusion":[[[1,2],[3,4]]]}}\n')
    out("runs", "metrics.jsonl", '\x01{"epoch":0,"train_loss":0.7,"val_loss":0.6,"val_f1":0.5,"lr":0.001,"seconds":3,"best":true,'
        '"val_class_f1":[0.5,0.5],"val_auroc":[0.6,0.7]}\n{"epoch":1,"train_loss":0.5,"lr":1e-4,"seconds":2.5}\n')
    out("runs", "run.json", '\x02{"name":"lr=0.01","model":"ResNet-34","dataset":"COVID","pipeline":"train.toml",'
        '"param":"learning-rate","value":"0.01","variables":{"learning-rate":"0.01","size":256,"s":"\\u00e9\\n"}}\n')
    out("feature-csv", "labelled.csv", "f0,f1,label\n0.5,1.5,normal\n-2,3e-3,\"co,vid\"\n1,1,x\n")
    out("feature-csv", "tsne.csv", "x,y,label\n0.1,0.2,a\n-0.3,0.4,b\n1e3,-1e-3,a\n")
    out("feature-csv", "plain.csv", "x,y\r\n1,2\r\n3,4\r\n")


def listener_seeds():
    """Byte streams one peer sends the C-STORE listener on one connection (tests/pacs/rawdicom.py
    builds the PDUs): C-ECHO, C-STORE in one PDV and in fragments, several contexts, an abort."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pacs"))
    import struct
    import rawdicom as ul
    verification = "1.2.840.10008.1.1"
    release = struct.pack(">BBIxxxx", 5, 0, 4)
    echo = (ul.implicit_element(0, 0x0002, ul.uid(verification)) + ul.implicit_element(0, 0x0100, struct.pack("<H", 0x30)) +
            ul.implicit_element(0, 0x0110, struct.pack("<H", 1)) + ul.implicit_element(0, 0x0800, struct.pack("<H", 0x0101)))
    echo = ul.implicit_element(0, 0, struct.pack("<I", len(echo))) + echo
    out("listener", "echo.bin", ul.associate_rq(sop_class=verification, xfer=ul.IMPLICIT_LE) + ul.pdata(1, 0x03, echo) + release)
    uid = "1.2.826.0.1.3680043.2.1143.77"
    data = ul.dataset(uid)
    store = ul.pdata(1, 0x03, ul.c_store_rq(ul.SC_CLASS, uid)) + ul.pdata(1, 0x02, data)
    out("listener", "store.bin", ul.associate_rq() + store + release)
    # The dataset in three PDVs over two PDUs, then the same instance again.
    a, b = len(data) // 3, 2 * len(data) // 3
    pdv = lambda ctl, payload: struct.pack(">IBB", len(payload) + 2, 1, ctl) + payload
    two = pdv(0x00, data[:a]) + pdv(0x00, data[a:b])
    frag = (ul.pdata(1, 0x03, ul.c_store_rq(ul.SC_CLASS, uid, 2)) + struct.pack(">BBI", 4, 0, len(two)) + two +
            ul.pdata(1, 0x02, data[b:]))
    out("listener", "store-fragments.bin", ul.associate_rq(max_pdu=0) + frag + store + release)
    # Two presentation contexts (verification, SC in implicit and explicit VR), asynchronous
    # operations and an SCU/SCP role item in the user information.
    pc = lambda cid, sop, xfers: ul.item(0x20, struct.pack(">BBBB", cid, 0, 0, 0) + ul.item(0x30, sop.encode()) +
                                         b"".join(ul.item(0x40, x.encode()) for x in xfers))
    user = (ul.item(0x51, struct.pack(">I", 32768)) + ul.item(0x52, b"1.2.826.0.1.3680043.2.1143.1") +
            ul.item(0x53, struct.pack(">HH", 1, 1)) + ul.item(0x54, struct.pack(">H", len(ul.SC_CLASS)) + ul.SC_CLASS.encode() + b"\1\0") +
            ul.item(0x55, b"FUZZ"))
    body = (struct.pack(">HH", 1, 0) + b"GSTCXR".ljust(16) + b"SENDER".ljust(16) + bytes(32) + ul.item(0x10, ul.APP_CONTEXT) +
            pc(1, verification, [ul.IMPLICIT_LE]) + pc(3, ul.SC_CLASS, [ul.IMPLICIT_LE, ul.EXPLICIT_LE]) + ul.item(0x50, user))
    rq = struct.pack(">BBI", 1, 0, len(body)) + body
    out("listener", "contexts.bin", rq + ul.pdata(1, 0x03, echo) + ul.pdata(3, 0x03, ul.c_store_rq(ul.SC_CLASS, uid + ".9")) +
        ul.pdata(3, 0x02, ul.dataset(uid + ".9")) + release)
    out("listener", "abort.bin", ul.associate_rq() + ul.pdata(1, 0x03, ul.c_store_rq(ul.SC_CLASS, uid)) +
        ul.pdata(1, 0x00, data[:40]) + struct.pack(">BBIxxBB", 7, 0, 4, 0, 0))
    out("listener", "associate-only.bin", ul.associate_rq(called="OTHER"))


def main():
    tmp = tempfile.mkdtemp()
    try:
        if os.path.isdir(ROOT):
            shutil.rmtree(ROOT)
        png_seeds()
        jpeg_seeds()
        j2k_seeds()
        dicom_seeds(tmp)
        weights_seeds(tmp)
        text_seeds()
        listener_seeds()
    finally:
        shutil.rmtree(tmp)
    total = 0
    for d, _, files in os.walk(ROOT):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    print(f"corpus: {total} bytes in {ROOT}", file=sys.stderr)


if __name__ == "__main__":
    main()
