// SPDX-License-Identifier: LGPL-2.1-or-later
// Catch2 for the tests, v2 or v3, whichever the system has: Debian 12 ships v2 (one header),
// Debian 13 v3 (headers and a library). The tests are written against v2's names; under v3 the
// few that moved are brought back here.
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>

#include <string>

using Catch::Approx;

namespace Catch {
/// v2's string matchers, which v3 keeps in Catch::Matchers (Contains became ContainsSubstring).
inline Matchers::StringContainsMatcher Contains(const std::string& text,
                                                CaseSensitive cs = CaseSensitive::Yes) {
  return Matchers::ContainsSubstring(text, cs);
}
using Matchers::StartsWith;
}  // namespace Catch
#else
#include <catch.hpp>  // v2: /usr/include/catch2 is on the include path (tests/meson.build)
#endif
