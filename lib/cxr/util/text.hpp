// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Small text helpers shared by readers, messages and element properties.
#include <string>
#include <string_view>
#include <vector>

namespace cxr::util {

/// The parts joined by `separator` ("a, b, c" by default); "" for none.
std::string join(const std::vector<std::string>& parts, std::string_view separator = ", ");

/// A comma-separated list (an element property such as "a, b,c"): each item with blanks around
/// it removed; empty items are left out. Empty for an empty or null text.
std::vector<std::string> split_commas(const char* text);

}  // namespace cxr::util
