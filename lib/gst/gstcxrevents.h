/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Custom serialized downstream events of gst-cxr streams. */
#pragma once

#include <gst/gst.h>
#include "gst/gstcxrmeta.h"

G_BEGIN_DECLS

/* Sticky: what the source will emit. Fields: task (string: multiclass | multilabel | none),
 * classes (GstValueArray of strings), counts (GstValueArray of guint64, per class, one epoch),
 * total (guint64: buffers the stream carries in all, all epochs and splits). */
#define GST_CXR_EVENT_DATASET "cxr-dataset"
/* A phase of a training stream begins or ends. Fields: epoch (guint), split (string),
 * state (string: start | end), count (guint64, scans in this phase). */
#define GST_CXR_EVENT_PHASE "cxr-phase"
/* A scan could not be processed and was dropped; downstream sinks record it. Fields: path,
 * index (guint64), split (string), epoch (guint), reason (string), element (string). */
#define GST_CXR_EVENT_SCAN_ERROR "cxr-scan-error"

GstEvent *gst_cxr_event_new_dataset (const gchar * task, const gchar * const *classes,
    const guint64 * counts, guint n_classes, guint64 total);
GstEvent *gst_cxr_event_new_phase (guint epoch, GstCxrSplit split, gboolean start, guint64 count);
/* meta may be NULL (then path is "unknown"). */
GstEvent *gst_cxr_event_new_scan_error (const GstCxrScanMeta * meta, const gchar * reason,
    const gchar * element);

/* Returns the event's structure when it is the named gst-cxr event, else NULL. */
const GstStructure *gst_cxr_event_get (GstEvent * event, const gchar * name);

G_END_DECLS
