// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/layout_cache.hpp"

#include <torch/version.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "cxr/runtime/blas.hpp"
#include "cxr_config.h"

namespace fs = std::filesystem;

namespace cxr::models {
namespace {

constexpr const char* kVersion = "v1";

// The CPU's model name and the vector extensions the kernels choose by.
std::string cpu_fingerprint() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model, flags;
  while (std::getline(in, line) && (model.empty() || flags.empty())) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string name = line.substr(0, line.find_first_of(" \t"));
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (model.empty() && line.rfind("model name", 0) == 0) model = value;
    if (flags.empty() && name == "flags") flags = value;
  }
  static const std::set<std::string> wanted = {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw",
                                               "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                                               "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve"};
  std::istringstream words(flags);
  std::string kept;
  for (std::string w; words >> w;)
    if (wanted.count(w)) kept += (kept.empty() ? "" : "+") + w;
  return (model.empty() ? "unknown" : model) + "[" + kept + "]";
}

// Text that cannot break a line or a field.
std::string clean(std::string s) {
  for (char& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s;
}

std::vector<std::string> fields_of(const std::string& line) {
  std::vector<std::string> f;
  std::string::size_type start = 0;
  for (;;) {
    const auto tab = line.find('\t', start);
    f.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return f;
}

bool is_layout_name(const std::string& s) {
  return s == "channels-last" || s == "contiguous" || s == "onednn" || s == "winograd";
}

}  // namespace

const std::string& machine_fingerprint() {
  static const std::string fp = [] {
    const runtime::BlasInfo blas = runtime::blas_info();
    return clean("cpu=" + cpu_fingerprint() + ";torch=" + TORCH_VERSION + ";blas=" +
                 (blas.library.empty() ? "other" : blas.library) + "/" + blas.core + "/" + blas.threading +
                 ";gst-cxr=" + CXR_VERSION);
  }();
  return fp;
}

std::string LayoutKey::str() const {
  std::ostringstream s;
  s << machine_fingerprint() << ";arch=" << architecture << ";input=" << height << "x" << width << ";batch=" << batch
    << ";threads=" << threads << ";streams=" << streams << ";precision=" << precision;
  return clean(s.str());
}

std::string default_layout_cache() {
  if (const char* env = std::getenv("CXR_LAYOUT_CACHE")) {
    const std::string v = env;
    if (v.empty() || v == "off" || v == "0" || v == "none") return "";
    return v;
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg == '/')
    return (fs::path(xdg) / "gst-cxr" / "layouts.tsv").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".cache" / "gst-cxr" / "layouts.tsv").string();
  return "";
}

std::string lookup_layout(const std::string& file, const std::string& key, int64_t now_unix) {
  if (file.empty()) return "";
  std::ifstream in(file);
  std::string line, found;
  while (in && std::getline(in, line)) {
    const auto f = fields_of(line);
    if (f.size() < 4 || f[0] != kVersion || f[1] != key || !is_layout_name(f[2])) continue;
    char* end = nullptr;
    const long long when = std::strtoll(f[3].c_str(), &end, 10);
    if (f[3].empty() || *end) continue;
    // Stale, or from the future (a clock set back): time again.
    if (when > now_unix + 86400 || now_unix - when > int64_t{kLayoutCacheMaxAgeDays} * 86400) continue;
    found = f[2];  // the last valid line of a key wins
  }
  return found;
}

bool remember_layout(const std::string& file, const std::string& key, const std::string& layout,
                     const std::string& timings, int64_t now_unix) {
  if (file.empty() || !is_layout_name(layout)) return false;
  try {
    const fs::path path(file);
    std::error_code ec;
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
    std::string kept;
    {
      std::ifstream in(file);
      std::string line;
      while (in && std::getline(in, line)) {
        const auto f = fields_of(line);
        if (f.size() >= 2 && f[0] == kVersion && f[1] == key) continue;  // replaced below
        if (line.empty() || line.size() > 4096) continue;                // garbage is dropped
        kept += line + "\n";
      }
    }
    kept += std::string(kVersion) + "\t" + clean(key) + "\t" + layout + "\t" + std::to_string(now_unix) + "\t" +
            clean(timings) + "\n";
    // A name of this process's own, then rename: readers see the old file or the new one.
    const std::string tmp = file + ".part." + std::to_string(::getpid());
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << kept;
      out.flush();
      if (!out) {
        fs::remove(tmp, ec);
        return false;
      }
    }
    fs::rename(tmp, path, ec);
    if (ec) {
      fs::remove(tmp, ec);
      return false;
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace cxr::models
