// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/util/text.hpp"

namespace cxr::util {

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) s += separator;
    s += parts[i];
  }
  return s;
}

std::vector<std::string> split_commas(const char* text) {
  std::vector<std::string> out;
  if (!text) return out;
  const std::string_view s(text);
  // The blanks g_strstrip() removes: ASCII white space.
  constexpr std::string_view kBlank = " \t\n\v\f\r";
  for (size_t start = 0; start <= s.size();) {
    size_t end = s.find(',', start);
    if (end == std::string_view::npos) end = s.size();
    const std::string_view item = s.substr(start, end - start);
    const size_t first = item.find_first_not_of(kBlank);
    if (first != std::string_view::npos)
      out.emplace_back(item.substr(first, item.find_last_not_of(kBlank) - first + 1));
    start = end + 1;
  }
  return out;
}

}  // namespace cxr::util
