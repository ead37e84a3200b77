// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/util/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <type_traits>

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

}  // namespace cxr::util
