// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The one task enum: what a model card decides and what a dataset's labels say.

namespace cxr {

/// Multiclass: one class per scan (softmax); Multilabel: any number (sigmoid, thresholds).
/// None: a dataset without labels (a model card always has a task).
enum class Task { None, Multiclass, Multilabel };

/// "none", "multiclass", "multilabel".
inline const char* to_string(Task task) {
  switch (task) {
    case Task::Multiclass: return "multiclass";
    case Task::Multilabel: return "multilabel";
    default: return "none";
  }
}

}  // namespace cxr
