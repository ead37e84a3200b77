// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/util/csv.hpp"

#include <fstream>
#include <iterator>
#include <strings.h>

#include "cxr/error.hpp"

namespace cxr::util {

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  for (size_t i = 0; i < header.size(); ++i)
    if (strcasecmp(header[i].c_str(), name.c_str()) == 0) return static_cast<int>(i);
  return -1;
}

int CsvTable::column_any(const std::vector<std::string>& names) const {
  for (const auto& n : names) {
    const int c = column(n);
    if (c >= 0) return c;
  }
  return -1;
}

CsvTable parse_csv(const std::string& text, const std::string& path) {
  CsvTable t;
  t.path = path;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  int line = 1, row_line = 1;
  size_t i = 0;
  // Skip a UTF-8 byte order mark.
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  auto end_row = [&] {
    row.push_back(std::move(field));
    field.clear();
    const bool blank = row.size() == 1 && row[0].empty();
    if (!blank) {
      if (t.header.empty()) {
        t.header = std::move(row);
      } else {
        if (row.size() != t.header.size())
          throw ConfigError(path + ":" + std::to_string(row_line) + ": " + std::to_string(row.size()) +
                            " fields, the header has " + std::to_string(t.header.size()));
        t.rows.push_back(std::move(row));
        t.lines.push_back(row_line);
      }
    }
    row.clear();
    any = false;
  };
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (!any) row_line = line;
    any = true;
    if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      end_row();
      ++line;
    } else if (c != '\r') {
      field += c;
    }
  }
  if (quoted) throw ConfigError(path + ":" + std::to_string(row_line) + ": unterminated quoted field");
  if (any) end_row();
  if (t.header.empty()) throw ConfigError(path + ":1: empty CSV (no header row)");
  return t;
}

CsvTable read_csv(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError(path + ": cannot open CSV file");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse_csv(text, path);
}

std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(s);
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace cxr::util
