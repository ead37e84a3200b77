// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// Helpers shared by the Catch2 tests: where the sample scans are, reading files.
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace cxrtest {

inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

/// data/samples of the source tree (set by meson as CXR_SAMPLES).
inline std::string samples(const std::string& rel = "") {
  const std::string root = env_or("CXR_SAMPLES", "data/samples");
  return rel.empty() ? root : root + "/" + rel;
}

inline std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
}

}  // namespace cxrtest
