// SPDX-License-Identifier: LGPL-2.1-or-later
// The weights reader (read_state_dict: the zip archive, then our unpickler of data.pkl and the
// tensor views over data/<key> storages), as cxrinfer, cxrgradcam and cxrtrain call it.
//
// An input starting with "PK" is a whole archive, written as it is (the zip reader's own
// checks). Anything else is the pickle: it is packed into a well-formed archive with the
// storage records a state dict refers to, so the mutations reach the unpickler instead of
// dying at the zip's CRC and header checks.
#include <caffe2/serialize/inline_container.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "cxr/models/weights.hpp"
#include "fuzz_common.hpp"

namespace {

std::string archive(const uint8_t* pickle, size_t size) {
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* buf, size_t n) -> size_t {
    out.append(static_cast<const char*>(buf), n);
    return n;
  });
  writer.writeRecord("data.pkl", pickle, size);
  // Storages "0".."3" of 64 bytes: enough for small float, half, long and byte tensors.
  static const std::string storage(64, '\x3f');
  for (const char* key : {"data/0", "data/1", "data/2", "data/3"}) writer.writeRecord(key, storage.data(), storage.size());
  writer.writeEndOfFile();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path;
  if (size >= 2 && std::memcmp(data, "PK", 2) == 0) {
    path = cxr::fuzz::write_file("weights.pt", data, size);
  } else {
    const std::string zip = archive(data, size);
    path = cxr::fuzz::write_file("weights.pt", zip);
  }
  try {
    const cxr::models::StateDict sd = cxr::models::read_state_dict(path);
    // Touch every tensor's bytes: a view that runs past its storage shows up here under ASan.
    for (const auto& item : sd) {
      const at::Tensor t = item.value().contiguous();
      volatile uint8_t sink = 0;
      const auto* p = static_cast<const uint8_t*>(t.data_ptr());
      for (size_t i = 0; i < t.nbytes(); ++i) sink = sink ^ p[i];
      (void)sink;
    }
  } catch (const cxr::Error&) {
  }
  return 0;
}
