// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The layout choices of `memory-format=auto`, remembered across processes.
///
/// Which layout runs a network fastest on the CPU depends on the CPU, the libraries and the
/// work, not on the scans: a choice made once holds for every later run with the same key. The
/// key names everything that decides it: CPU model and vector extensions, LibTorch, BLAS and
/// gst-cxr versions, architecture, input size, batch size, threads per stream and streams.
///
/// The file is text, one choice per line (`v1 TAB key TAB layout TAB unix-time TAB timings`),
/// under `$XDG_CACHE_HOME/gst-cxr/layouts.tsv` (`~/.cache/...` without XDG_CACHE_HOME);
/// `CXR_LAYOUT_CACHE=FILE` names another file, `CXR_LAYOUT_CACHE=off` turns the cache off.
/// A missing, unreadable or corrupt file, a line that does not parse, or a choice older than
/// kMaxAgeDays is as good as no entry: the layouts are timed again, never an error.
#include <cstdint>
#include <string>

namespace cxr::models {

/// What decides a layout choice (everything but the scans).
struct LayoutKey {
  std::string architecture;
  int height = 0, width = 0;
  int batch = 0;
  int threads = 0;  ///< intra-op threads of each stream
  int streams = 1;
  std::string precision = "fp32";
  /// "cpu=...;torch=...;blas=...;gst-cxr=...;arch=...;input=HxW;batch=N;threads=T;streams=S;precision=P"
  std::string str() const;
};

/// This machine and build: CPU model name and its vector extensions, LibTorch, BLAS (library and
/// kernels) and gst-cxr versions, as one string (part of LayoutKey::str()).
const std::string& machine_fingerprint();

/// Choices older than this are timed again (a kernel update under the same version strings, a
/// VM moved to another host of the same model).
constexpr int kLayoutCacheMaxAgeDays = 30;

/// The cache file to use by default: $CXR_LAYOUT_CACHE (empty or "off" / "0" / "none": no cache),
/// else $XDG_CACHE_HOME/gst-cxr/layouts.tsv, else $HOME/.cache/gst-cxr/layouts.tsv; "" when
/// none can be named.
std::string default_layout_cache();

/// The layout name remembered for `key` in `file`, or "" (no file, no entry, corrupt, stale).
/// Never throws.
std::string lookup_layout(const std::string& file, const std::string& key, int64_t now_unix);

/// Remembers `layout` for `key` (replacing an older line of that key; lines of other keys and
/// lines this version cannot read are kept), written atomically: another process reading at the
/// same time sees the old file or the new one. `timings` is free text for people
/// ("channels-last=0.0123 contiguous=0.0150", seconds per scan). Returns false, and leaves the
/// file as it was, when it cannot be written (read-only home, full disk): a cache that cannot be
/// kept is no error.
bool remember_layout(const std::string& file, const std::string& key, const std::string& layout,
                     const std::string& timings, int64_t now_unix);

}  // namespace cxr::models
