// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// A small JSON writer for result rows and metrics (one object per line).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cxr::util {

/// Appends s to out as a quoted, escaped JSON string (UTF-8 passed through, control characters escaped).
void json_escape(std::string& out, std::string_view s);

/// Formats a double as JSON: shortest round-trip form; NaN/inf become null.
std::string json_number(double v);

/// Builds one JSON object: `JsonObject o; o.add("path", p).add("f1", 0.9); o.str()`.
class JsonObject {
 public:
  JsonObject& add(std::string_view key, std::string_view value);
  JsonObject& add(std::string_view key, const char* value) { return add(key, std::string_view(value)); }
  JsonObject& add(std::string_view key, const std::string& value) { return add(key, std::string_view(value)); }
  JsonObject& add(std::string_view key, double value);
  JsonObject& add(std::string_view key, int64_t value);
  JsonObject& add(std::string_view key, int value) { return add(key, static_cast<int64_t>(value)); }
  JsonObject& add(std::string_view key, uint64_t value);
  JsonObject& add(std::string_view key, unsigned value) { return add(key, static_cast<uint64_t>(value)); }
  JsonObject& add(std::string_view key, bool value);
  JsonObject& add(std::string_view key, const std::vector<std::string>& values);
  JsonObject& add(std::string_view key, const std::vector<double>& values);
  JsonObject& add(std::string_view key, const std::vector<float>& values);
  JsonObject& add(std::string_view key, const std::vector<int64_t>& values);
  JsonObject& add_null(std::string_view key);
  /// Inserts already-serialised JSON (an object, array, ...) verbatim.
  JsonObject& add_raw(std::string_view key, std::string_view json);
  std::string str() const { return body_ + "}"; }

 private:
  void key(std::string_view k);
  std::string body_ = "{";
};

}  // namespace cxr::util
