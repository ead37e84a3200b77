# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs grey numpy frames through gst-cxr preprocessing elements and gives the frames back; shared
by parity_equalize/blur/resize/augment.py. Frames go in through appsrc (so both sides see the same
grey pixels, whatever decoder) and, as a cross-check, through gst-launch-1.0 from a PNG file."""
import glob
import os
import subprocess
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: E402,F401
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.io import ImageReadMode, read_image  # noqa: E402

from gst_frames import frame_from_bytes, frame_from_sample  # noqa: E402

Gst.init(None)

SAMPLES = os.environ.get("CXR_SAMPLES", "data/samples")
SHARED = os.environ.get("CXR_SHARED_DATA", "../shared/data")


def require(*factories):
    for f in factories:
        if Gst.ElementFactory.find(f) is None:
            sys.exit(f"{f} not found on GST_PLUGIN_PATH_1_0={os.environ.get('GST_PLUGIN_PATH_1_0')}")


def scans(n_shared=12):
    """(path, grey uint8 array as torchvision's read_image(GRAY) gives it) for the bundled PNG
    and JPEG samples (every COVID and NIH scan, 6 pneumonia JPEGs) and some shared scans."""
    files = (sorted(glob.glob(f"{SAMPLES}/covid/*.png")) + sorted(glob.glob(f"{SAMPLES}/nih/*.png"))
             + sorted(glob.glob(f"{SAMPLES}/pneumonia/*/*.jpeg"))[::10])
    if len(files) < 12:
        sys.exit(f"bundled samples missing under {SAMPLES}: {len(files)} files")
    covid = sorted(glob.glob(f"{SHARED}/covid/COVID/*.png")) + sorted(glob.glob(f"{SHARED}/covid/Normal/*.png"))
    nih = sorted(glob.glob(f"{SHARED}/nih/full_res/**/*.png", recursive=True))
    if len(covid) < 50 or len(nih) < 10:
        sys.exit(f"shared data missing under {SHARED}: {len(covid)} COVID, {len(nih)} NIH scans")
    # Spread over the folders (the first COVID files are the bundled ones).
    extra = covid[20::len(covid) // (n_shared // 2)][: n_shared // 2] + nih[::len(nih) // (n_shared // 2)][: n_shared // 2]
    return [(p, read_image(p, ImageReadMode.GRAY)[0].numpy()) for p in files + extra]


def _caps(frame):
    fmt = "GRAY8" if frame.dtype == np.uint8 else "GRAY16_LE"
    h, w = frame.shape
    return Gst.Caps.from_string(f"video/x-raw,format={fmt},width={w},height={h},framerate=0/1")


def _to_buffer(frame, offset):
    bpp = frame.dtype.itemsize
    h, w = frame.shape
    stride = (w * bpp + 3) // 4 * 4
    rows = np.zeros((h, stride), np.uint8)
    rows[:, : w * bpp] = np.ascontiguousarray(frame).astype(frame.dtype.newbyteorder("<")).view(np.uint8).reshape(h, -1)
    buf = Gst.Buffer.new_wrapped(rows.tobytes())
    buf.offset = offset
    return buf


def run(frames, chain, offsets=None):
    """Push frames (2-D uint8/uint16 arrays, sizes may differ) through `chain` (a gst-launch
    fragment of elements) and return the output frames in order."""
    pipe = Gst.parse_launch(f"appsrc name=src format=time ! {chain} ! appsink name=sink sync=false")
    src, sink = pipe.get_by_name("src"), pipe.get_by_name("sink")
    pipe.set_state(Gst.State.PLAYING)
    for i, f in enumerate(frames):
        buf = _to_buffer(f, offsets[i] if offsets else i)
        buf.pts = i * Gst.SECOND
        if src.emit("push-sample", Gst.Sample.new(buf, _caps(f), None, None)) != Gst.FlowReturn.OK:
            break
    src.emit("end-of-stream")
    out = []
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        out.append(frame_from_sample(sample))
    err = pipe.get_bus().pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.WARNING)
    pipe.set_state(Gst.State.NULL)
    if len(out) != len(frames):
        msg = err.parse_error()[0].message if err and err.type == Gst.MessageType.ERROR else (
            err.parse_warning()[0].message if err else "")
        raise RuntimeError(f"{chain}: {len(out)} of {len(frames)} frames came out {msg}")
    return out


def run_launch(frame, chain, out_w, out_h):
    """The same through gst-launch-1.0: frame saved as a grey PNG, filesrc ! pngdec ! chain !
    filesink of the raw output frame."""
    with tempfile.TemporaryDirectory() as d:
        Image.fromarray(frame).save(f"{d}/in.png")
        fmt = "GRAY8" if frame.dtype == np.uint8 else "GRAY16_LE"
        cmd = (["gst-launch-1.0", "-q", "filesrc", f"location={d}/in.png", "!", "pngdec", "!", "videoconvert", "!",
                f"video/x-raw,format={fmt}", "!"] + chain.split() + ["!", "filesink", f"location={d}/out.raw"])
        subprocess.run(cmd, check=True, timeout=120)
        with open(f"{d}/out.raw", "rb") as f:
            return frame_from_bytes(f.read(), out_w, out_h, fmt)


def diff(a, b):
    """(max absolute difference, pixels that differ); shapes must agree."""
    if a.shape != b.shape:
        raise AssertionError(f"shape {a.shape} != {b.shape}")
    d = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return int(d.max()), int((d > 0).sum())
