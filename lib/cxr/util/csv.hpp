// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// CSV reading (RFC 4180: quoted fields, doubled quotes, CRLF) with line numbers for errors, and
/// the one way fields are written.
#include <string>
#include <string_view>
#include <vector>

namespace cxr::util {

struct CsvTable {
  std::string path;                          ///< file it came from (for messages)
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int> lines;                    ///< 1-based line number of each row

  /// Index of a column by name (exact, then case-insensitive), or -1.
  int column(const std::string& name) const;
  /// Index of the first column found among names, or -1.
  int column_any(const std::vector<std::string>& names) const;
};

/// Reads a CSV file with a header row. Throws cxr::ConfigError "file:line: reason" on a row whose
/// field count differs from the header, or an unterminated quote; cxr::IoError if unreadable.
CsvTable read_csv(const std::string& path);

/// Parses CSV text (path is used in messages only).
CsvTable parse_csv(const std::string& text, const std::string& path);

/// One CSV field as written: quoted (quotes doubled) when it holds a comma, a quote, a newline or
/// a carriage return, else as it is.
std::string csv_field(std::string_view s);

}  // namespace cxr::util
