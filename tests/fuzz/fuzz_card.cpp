// SPDX-License-Identifier: LGPL-2.1-or-later
// Model cards (TOML), as cxrinfer, cxrgradcam and cxrtrain read them.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cxr/error.hpp"
#include "cxr/models/card.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    cxr::models::parse_card(text, "/models/fuzz/card.toml");
  } catch (const cxr::Error&) {
  }
  return 0;
}
