#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes a folder of broken scans (and a few good ones between them) for the bad-input tests.

Prints one line per file: name<TAB>expected ("ok" or a fragment the error reason must contain).
"""
import os
import random
import struct
import sys
import zlib

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

out = sys.argv[1]
samples = sys.argv[2]
os.makedirs(out, exist_ok=True)
expect = {}


def put(name, data, what):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    expect[name] = what


def read(rel):
    with open(os.path.join(samples, rel), "rb") as f:
        return f.read()


png = read("covid/" + sorted(os.listdir(os.path.join(samples, "covid")))[0])
jpeg = read("pneumonia/normal/" + sorted(os.listdir(os.path.join(samples, "pneumonia/normal")))[0])
dcm = read("dicom/NIH_DX_nccid_testdata.dcm")

put("00-good.png", png, "ok")
put("01-zero.png", b"", "empty")
put("02-truncated.png", png[: len(png) // 2], "")
put("03-truncated.jpeg", jpeg[: len(jpeg) // 2], "")
put("04-good.jpeg", jpeg, "ok")
put("05-truncated.dcm", dcm[: len(dcm) // 2], "")
random.seed(7)
put("06-random.png", bytes(random.getrandbits(8) for _ in range(4096)), "")
put("07-text.png", b"this is not an image, just text\n" * 20, "")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


# A valid PNG signature and IHDR declaring 100000 x 100000 grey pixels, tiny IDAT.
ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
put("08-huge.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 100))
    + png_chunk(b"IEND", b""), "100000")


def dicom(name, rows, cols, with_pixels=True, ts=ExplicitVRLittleEndian):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ts
    ds = FileDataset(name, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientID = "BAD0001"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if with_pixels:
        pixels = np.zeros((min(rows, 4), min(cols, 4)), np.uint8).tobytes()
        if ts == ExplicitVRLittleEndian:
            ds.PixelData = pixels
        else:
            # Compressed syntaxes carry encapsulated fragments.
            ds.PixelData = encapsulate([pixels])
            ds["PixelData"].is_undefined_length = True
    ds.is_little_endian, ds.is_implicit_VR = True, False
    path = os.path.join(out, name)
    ds.save_as(path, write_like_original=False)
    return path


dicom("09-no-pixels.dcm", 64, 64, with_pixels=False)
expect["09-no-pixels.dcm"] = "pixel"
put("10-good.dcm", dcm, "ok")
dicom("11-huge.dcm", 65535, 65535)
expect["11-huge.dcm"] = "65535"
# MPEG-2 video transfer syntax: valid DICOM, not a still image we decode.
p = dicom("12-mpeg2.dcm", 64, 64, ts="1.2.840.10008.1.2.4.100")
expect["12-mpeg2.dcm"] = "1.2.840.10008.1.2.4.100"
put("13-good.png", png, "ok")

for name in sorted(expect):
    print(f"{name}\t{expect[name]}")
