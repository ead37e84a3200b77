// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Crash-safe files of a run directory: written under a temporary name, flushed to disk and
/// renamed over the old file, so a reader (or a resumed run) sees the old file or the new one,
/// never a torn one.
#include <string>

namespace cxr::train {

/// Writes `content` to `path` atomically (temp + fsync + rename + fsync of the directory).
/// Throws cxr::IoError naming the file.
void write_file_atomic(const std::string& path, const std::string& content);

/// Makes an already written temporary file durable and moves it to `path` (fsync, rename, fsync
/// of the directory); for files other writers produce (state dicts, archives, cards). Throws
/// cxr::IoError; `tmp` is removed on failure.
void commit_file(const std::string& tmp, const std::string& path);

/// The whole file as a string; throws cxr::IoError.
std::string read_file(const std::string& path);

}  // namespace cxr::train
