// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/util/json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <type_traits>

#include "cxr/error.hpp"

namespace cxr::util {

void json_escape(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  // Shortest representation that reads back to the same double.
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

void JsonObject::key(std::string_view k) {
  if (body_.size() > 1) body_ += ',';
  json_escape(body_, k);
  body_ += ':';
}

JsonObject& JsonObject::add(std::string_view k, std::string_view value) {
  key(k);
  json_escape(body_, value);
  return *this;
}

JsonObject& JsonObject::add(std::string_view k, double value) {
  key(k);
  body_ += json_number(value);
  return *this;
}

JsonObject& JsonObject::add(std::string_view k, int64_t value) {
  key(k);
  body_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::add(std::string_view k, uint64_t value) {
  key(k);
  body_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::add(std::string_view k, bool value) {
  key(k);
  body_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::add(std::string_view k, const std::vector<std::string>& values) {
  key(k);
  body_ += '[';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) body_ += ',';
    json_escape(body_, values[i]);
  }
  body_ += ']';
  return *this;
}

template <typename T>
static void append_numbers(std::string& body, const std::vector<T>& values) {
  body += '[';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) body += ',';
    if constexpr (std::is_floating_point_v<T>) {
      // float values print from the float itself, so 0.1f reads "0.1", not 0.100000001490116.
      if constexpr (std::is_same_v<T, float>) {
        char buf[32];
        if (!std::isfinite(values[i])) {
          body += "null";
          continue;
        }
        auto res = std::to_chars(buf, buf + sizeof buf, values[i]);
        body.append(buf, res.ptr);
      } else {
        body += json_number(values[i]);
      }
    } else {
      body += std::to_string(values[i]);
    }
  }
  body += ']';
}

JsonObject& JsonObject::add(std::string_view k, const std::vector<double>& values) {
  key(k);
  append_numbers(body_, values);
  return *this;
}

JsonObject& JsonObject::add(std::string_view k, const std::vector<float>& values) {
  key(k);
  append_numbers(body_, values);
  return *this;
}

JsonObject& JsonObject::add(std::string_view k, const std::vector<int64_t>& values) {
  key(k);
  append_numbers(body_, values);
  return *this;
}

JsonObject& JsonObject::add_null(std::string_view k) {
  key(k);
  body_ += "null";
  return *this;
}

JsonObject& JsonObject::add_raw(std::string_view k, std::string_view json) {
  key(k);
  body_ += json;
  return *this;
}

nlohmann::json parse_json(std::string_view text, const std::string& where) {
  constexpr int kMaxDepth = 64;
  auto line_at = [&](size_t byte) {
    return 1 + std::count(text.begin(), text.begin() + static_cast<long>(std::min(byte, text.size())), '\n');
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > kMaxDepth) throw ConfigError(where + ": invalid JSON: nested too deeply");
      return true;
    });
  } catch (const nlohmann::json::parse_error& e) {
    // nlohmann's byte is 1-based and points just past the offending character.
    const size_t byte = e.byte > 0 ? e.byte - 1 : 0;
    std::string what = e.what();
    const size_t colon = what.find("parse error");
    if (colon != std::string::npos) what = what.substr(colon);
    throw ConfigError(where + ":" + std::to_string(line_at(byte)) + ": invalid JSON: " + what);
  } catch (const nlohmann::json::exception& e) {
    // A number beyond double's range (1e999): the parser says where in no other way.
    std::string what = e.what();
    const size_t bracket = what.find("] ");
    if (bracket != std::string::npos) what = what.substr(bracket + 2);
    throw ConfigError(where + ": invalid JSON: " + what);
  }
}

const nlohmann::json* json_get(const nlohmann::json& j, std::string_view key) {
  if (!j.is_object()) return nullptr;
  const auto it = j.find(std::string(key));
  return it == j.end() ? nullptr : &*it;
}

double json_number_or(const nlohmann::json& j, std::string_view key, double fallback) {
  const nlohmann::json* v = json_get(j, key);
  return v && v->is_number() ? v->get<double>() : fallback;
}

std::string json_string_or(const nlohmann::json& j, std::string_view key, const std::string& fallback) {
  const nlohmann::json* v = json_get(j, key);
  if (!v) return fallback;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_number()) return json_number(v->get<double>());
  if (v->is_boolean()) return v->get<bool>() ? "true" : "false";
  return fallback;
}

std::vector<double> json_numbers(const nlohmann::json& j) {
  std::vector<double> out;
  if (!j.is_array()) return out;
  for (const auto& v : j) out.push_back(v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN());
  return out;
}

}  // namespace cxr::util
