// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// JSON: a small writer for result rows and metrics (one object per line, numbers in their
/// shortest round-trip form, so the files stay byte for byte what readers and tests expect), and
/// reading through nlohmann::json (Debian's nlohmann-json3), with errors that name file and line.
/// Readers include <nlohmann/json.hpp> for the value type.
#include <nlohmann/json_fwd.hpp>

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

/// Parses one JSON document. Throws cxr::ConfigError "where:line: invalid JSON: reason"; also
/// for nesting deeper than 64 and numbers beyond double's range (1e999), which only a broken or
/// hostile file holds (those name no line).
nlohmann::json parse_json(std::string_view text, const std::string& where);

/// Member `key` of an object, or nullptr (also when `j` is not an object).
const nlohmann::json* json_get(const nlohmann::json& j, std::string_view key);
/// Member `key` as a number; `fallback` when missing, null or not a number.
double json_number_or(const nlohmann::json& j, std::string_view key, double fallback);
/// Member `key` as a string; a number is formatted by json_number(), a bool as true/false;
/// `fallback` when missing or of another type.
std::string json_string_or(const nlohmann::json& j, std::string_view key, const std::string& fallback);
/// An array's numbers (entries that are not numbers become NaN); empty when `j` is no array.
std::vector<double> json_numbers(const nlohmann::json& j);

}  // namespace cxr::util
