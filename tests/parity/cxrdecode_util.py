# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs files through the cxrdecode element (filesrc ! cxrdecode ! appsink) and returns numpy
frames; shared by parity_decode.py and parity_dicom.py."""
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: E402

from gst_frames import frame_from_sample  # noqa: E402

Gst.init(None)


def decode(path, **props):
    """Decoded frame of one file as a 2-D numpy array (uint8 or uint16), or raises."""
    prop_str = " ".join(f"{k.replace('_', '-')}={v}" for k, v in props.items())
    pipe = Gst.parse_launch(
        f'filesrc location="{path}" ! cxrdecode on-error=stop {prop_str} ! appsink name=sink sync=false')
    sink = pipe.get_by_name("sink")
    pipe.set_state(Gst.State.PLAYING)
    sample = sink.emit("pull-sample")
    bus = pipe.get_bus()
    err = bus.pop_filtered(Gst.MessageType.ERROR)
    pipe.set_state(Gst.State.NULL)
    if sample is None:
        raise RuntimeError(f"{path}: no frame" + (f" ({err.parse_error()[0].message})" if err else ""))
    return frame_from_sample(sample)


def require_plugin():
    if Gst.ElementFactory.find("cxrdecode") is None:
        sys.exit(f"cxrdecode not found on GST_PLUGIN_PATH_1_0={os.environ.get('GST_PLUGIN_PATH_1_0')}")
