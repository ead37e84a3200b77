# SPDX-License-Identifier: LGPL-2.1-or-later
"""GRAY8 / GRAY16_LE GStreamer frames as 2-D numpy arrays (uint8 or uint16); shared by
cxrdecode_util.py and preprocess_util.py."""
import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402
import numpy as np  # noqa: E402


def frame_from_bytes(data, w, h, fmt):
    """A frame's bytes, rows at GStreamer's default 4-byte alignment, as an h x w array."""
    bpp = 1 if fmt == "GRAY8" else 2
    stride = (w * bpp + 3) // 4 * 4  # GStreamer's default row alignment
    rows = np.frombuffer(data, dtype=np.uint8)[: stride * h].reshape(h, stride)[:, : w * bpp]
    return np.ascontiguousarray(rows).view(np.uint8 if bpp == 1 else "<u2").reshape(h, w)


def frame_from_sample(sample):
    """The frame of an appsink's Gst.Sample."""
    s = sample.get_caps().get_structure(0)
    w, h, fmt = s.get_value("width"), s.get_value("height"), s.get_value("format")
    buf = sample.get_buffer()
    ok, info = buf.map(Gst.MapFlags.READ)
    data = bytes(info.data)
    buf.unmap(info)
    return frame_from_bytes(data, w, h, fmt)
