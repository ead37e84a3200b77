// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Crash-safe file placement for the inbox and outbox folders: a file is either absent or
/// complete, and once a call returns it survives a power cut (file and directory entry synced).
#include <string>
#include <vector>

namespace cxr::dicom {

/// Suffix of files still being written; listings skip them and cleanup removes them.
inline constexpr const char* kPartialSuffix = ".part";

/// Creates `dir` (and parents). Throws cxr::IoError.
void make_dirs(const std::string& dir);

/// fsyncs a file's data. Throws cxr::IoError naming the file.
void sync_file(const std::string& path);

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
void sync_dir(const std::string& dir);

/// Renames `from` to `to` (same filesystem), then syncs `to`'s directory. The data of `from`
/// must already be synced. Throws cxr::IoError.
void publish(const std::string& from, const std::string& to);

/// Writes `size` bytes to `dir/name` durably: temp file, fsync, rename, fsync dir.
void write_durably(const std::string& dir, const std::string& name, const void* data, size_t size);

/// Copies a file durably into `dir/name` (same steps as write_durably).
void copy_durably(const std::string& from, const std::string& dir, const std::string& name);

/// Regular files of `dir` whose name ends with `suffix`, oldest first (by modification time,
/// then name), partial files excluded. Missing dir: empty list.
std::vector<std::string> list_files(const std::string& dir, const std::string& suffix = ".dcm");

/// Removes the partial files a crash left in `dir`; returns how many.
size_t remove_partials(const std::string& dir);

/// Removes a file and syncs its directory; false when it did not exist.
bool remove_durably(const std::string& path);

/// A file name made of the characters of `s` that are safe in paths ([0-9A-Za-z.-_]).
std::string safe_name(const std::string& s);

}  // namespace cxr::dicom
