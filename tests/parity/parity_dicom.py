# SPDX-License-Identifier: LGPL-2.1-or-later
"""cxrdecode's DICOM output against pydicom (python3-pydicom 2.3) stored values: native files
directly; JPEG baseline and JPEG-LS files after DCMTK's own dcmdjpeg / dcmdjpls decompression
(pydicom here has no JPEG handler); JPEG 2000 against the reference statistics in the shared
data README (Pillow/OpenJPEG). Expected element output = stored values, MONOCHROME1 inverted,
expanded to 8 or 16 bits by bit replication."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import pydicom  # noqa: E402

import cxrdecode_util  # noqa: E402

cxrdecode_util.require_plugin()
samples = os.environ.get("CXR_SAMPLES", "data/samples")
shared = os.environ.get("CXR_SHARED_DATA", "../shared/data")


def expected(ds):
    stored = ds.pixel_array.astype(np.int64)
    bits = int(ds.BitsStored)
    slope, intercept = float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0)
    if slope != 1 or intercept != 0 or int(getattr(ds, "PixelRepresentation", 0)) != 0:
        raise SystemExit("parity file with rescale/signed data: extend this test")
    v = stored
    if ds.PhotometricInterpretation == "MONOCHROME1":
        v = (1 << bits) - 1 - v
    out_bits = 8 if bits <= 8 else 16
    acc, filled = np.zeros_like(v), 0
    while filled < out_bits:
        acc = (acc << bits) | v
        filled += bits
    return (acc >> (filled - out_bits)).astype(np.uint8 if out_bits == 8 else np.uint16)


failures = 0
checked = 0
with tempfile.TemporaryDirectory() as tmp:
    cases = []
    for name in ["CR-MONO1-10-chest.dcm", "NIH_DX_nccid_testdata.dcm"]:
        cases.append((f"{samples}/dicom/{name}", f"{samples}/dicom/{name}"))
    for name in ["LIDC_CR-MONOCHROME1_chest.dcm", "WG04_RG1_from_JLSN_decoded_uncompressed.dcm"]:
        cases.append((f"{shared}/dicom/{name}", f"{shared}/dicom/{name}"))
    for name, tool in [("SIIM_CR_jpegbaseline.dcm", "dcmdjpeg"), ("SIIM_CR_jpegbaseline_Fake_MONOCHROME1.dcm", "dcmdjpeg"),
                       ("WG04_RG1_JLSN.dcm", "dcmdjpls")]:
        out = os.path.join(tmp, name)
        subprocess.run([tool, f"{samples}/dicom/{name}", out], check=True)
        cases.append((f"{samples}/dicom/{name}", out))
    for path, ref_path in cases:
        ds = pydicom.dcmread(ref_path, force=True)  # force: the ACR-NEMA file has no preamble
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        ref = expected(ds)
        ours = cxrdecode_util.decode(path)
        checked += 1
        if ours.shape != ref.shape or ours.dtype != ref.dtype or not np.array_equal(ours, ref):
            print(f"MISMATCH {path}: ours {ours.shape} {ours.dtype}, reference {ref.shape} {ref.dtype}")
            failures += 1

# Lossy JPEG 2000: statistics of the stored values (decoders may differ slightly).
j2k = cxrdecode_util.decode(f"{samples}/dicom/WG04_RG1_J2KI.dcm")
stored = 32767 - (j2k.astype(np.int64) >> 1)  # undo 15->16 bit replication and MONOCHROME1 inversion
checked += 1
if not (abs(stored.min() - 803) <= 8 and abs(stored.max() - 26512) <= 8 and abs(stored.mean() - 7391.450) < 0.05):
    print(f"MISMATCH J2KI stats: min {stored.min()} max {stored.max()} mean {stored.mean():.3f}")
    failures += 1

print(f"pydicom {pydicom.__version__}: {checked} DICOM files compared, {failures} mismatches")
sys.exit(1 if failures else 0)
