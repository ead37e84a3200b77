// SPDX-License-Identifier: LGPL-2.1-or-later
// State-dict files: C++ round trip, transfer learning, and clear errors for bad files.
#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include "cxr_catch.hpp"
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "cxr/error.hpp"
#include "cxr/models/classifier.hpp"
#include "cxr/models/weights.hpp"
#include "testutil.hpp"

using namespace cxr::models;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/cxr-weights-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  auto v = cxrtest::read_file(path);
  return std::string(v.begin(), v.end());
}

/// An archive with the given data.pkl (and optionally one storage record).
void write_archive(const std::string& path, const std::string& pickle, const std::string& storage = "") {
  caffe2::serialize::PyTorchStreamWriter w(path);
  w.writeRecord("data.pkl", pickle.data(), pickle.size());
  if (!storage.empty()) w.writeRecord("data/0", storage.data(), storage.size());
  w.writeEndOfFile();
}

/// Builds pickles opcode by opcode (string literals with \\x escapes would swallow hex letters).
struct Pk {
  std::string s;
  Pk& op(int c) {
    s.push_back(static_cast<char>(c));
    return *this;
  }
  Pk& ops(const std::string& cs) {
    s += cs;
    return *this;
  }
  Pk& str(const std::string& v) {
    op('X');
    for (int k = 0; k < 4; ++k) op(static_cast<int>((v.size() >> (8 * k)) & 0xff));
    s += v;
    return *this;
  }
  Pk& global(const std::string& module, const std::string& name) {
    s += "c" + module + "\n" + name + "\n";
    return *this;
  }
};

}  // namespace

TEST_CASE("weights: save and load round trip in C++", "[weights]") {
  TempDir tmp;
  for (const char* arch : {"resnet34", "mobilenet_v3_large", "efficientnet_b1"}) {
    SECTION(arch) {
      torch::manual_seed(5);
      auto a = make_classifier(arch, 3);
      {
        // Train-mode steps: BatchNorm statistics and num_batches_tracked move.
        torch::NoGradGuard no_grad;
        a->train();
        a->forward(torch::randn({2, 3, 64, 64}));
        a->forward(torch::randn({2, 3, 64, 64}));
      }
      const std::string path = tmp.file(std::string(arch) + ".pth");
      save_weights(*a, path);
      REQUIRE(fs::exists(path));
      CHECK_FALSE(fs::exists(path + ".tmp"));

      const StateDict sd = read_state_dict(path);
      const StateDict ref = state_dict(*a);
      REQUIRE(sd.size() == ref.size());
      for (size_t i = 0; i < sd.size(); ++i) {
        INFO(ref[i].key());
        REQUIRE(sd[i].key() == ref[i].key());
        REQUIRE(sd[i].value().scalar_type() == ref[i].value().scalar_type());
        REQUIRE(torch::equal(sd[i].value(), ref[i].value()));
      }
      const auto* nbt = sd.find(std::string(arch) == "resnet34" ? "bn1.num_batches_tracked"
                                                                 : "features.0.1.num_batches_tracked");
      REQUIRE(nbt);
      CHECK(nbt->scalar_type() == torch::kLong);
      CHECK(nbt->item<int64_t>() == 2);

      torch::manual_seed(6);
      auto b = make_classifier(arch, 3);
      load_weights(*b, path);
      a->eval();
      b->eval();
      torch::NoGradGuard no_grad;
      auto x = torch::randn({2, 3, 64, 64});
      CHECK(torch::equal(a->forward(x), b->forward(x)));
    }
  }
}

TEST_CASE("weights: transfer learning loads the backbone and keeps a fresh head", "[weights]") {
  TempDir tmp;
  torch::manual_seed(7);
  auto imagenet = make_classifier("efficientnet_b1", 1000);
  const std::string path = tmp.file("imagenet.pth");
  save_weights(*imagenet, path);

  auto net = make_classifier("efficientnet_b1", 3);
  // A strict load must fail on the head, naming it and both shapes.
  try {
    load_weights(*net, path);
    FAIL("strict load of a 1000-class checkpoint into a 3-class model succeeded");
  } catch (const WeightsError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("classifier.1.weight [1000, 1280] in the file, [3, 1280] in the model"));
    CHECK_THAT(what, Catch::Contains(path));
  }
  const auto head_before = net->named_parameters()["classifier.1.weight"].clone();
  load_backbone(*net, path);
  const auto mine = state_dict(*net);
  const auto theirs = state_dict(*imagenet);
  size_t copied = 0;
  for (const auto& item : mine) {
    if (item.key().rfind("classifier.1.", 0) == 0) continue;
    REQUIRE(torch::equal(item.value(), theirs[item.key()]));
    ++copied;
  }
  CHECK(copied == mine.size() - 2);
  CHECK(torch::equal(net->named_parameters()["classifier.1.weight"], head_before));
  CHECK(net->num_classes() == 3);

  // The same through replace_head(): load whole, then swap the head.
  auto other = make_classifier("efficientnet_b1", 1000);
  load_weights(*other, path);
  other->replace_head(3);
  CHECK(other->num_classes() == 3);
}

TEST_CASE("weights: missing and unexpected keys", "[weights]") {
  TempDir tmp;
  auto net = make_classifier("resnet34", 2);
  StateDict sd = state_dict(*net);
  StateDict partial;
  for (const auto& item : sd) {
    if (item.key() != "layer3.1.bn2.running_var") partial.insert(item.key(), item.value());
  }
  partial.insert("extra.weight", torch::zeros({2}));
  const std::string path = tmp.file("partial.pth");
  write_state_dict(partial, path);
  CHECK_THROWS_WITH(load_weights(*net, path), Catch::Contains("missing keys: layer3.1.bn2.running_var") &&
                                                  Catch::Contains("unexpected keys: extra.weight"));
  // Not strict: loads what fits.
  load_state_dict(*net, read_state_dict(path), LoadOptions{false, {}});
}

TEST_CASE("weights: corrupt, truncated and foreign files give clear errors", "[weights]") {
  TempDir tmp;
  auto net = make_classifier("mobilenet_v3_large", 2);
  const std::string good = tmp.file("good.pth");
  save_weights(*net, good);
  const std::string bytes = read_bytes(good);

  SECTION("missing file") {
    CHECK_THROWS_AS(read_state_dict(tmp.file("nope.pth")), cxr::IoError);
    CHECK_THROWS_WITH(read_state_dict(tmp.file("nope.pth")), Catch::Contains("nope.pth"));
  }
  SECTION("truncated archive") {
    for (size_t keep : {size_t{3}, size_t{100}, bytes.size() / 2, bytes.size() - 30}) {
      INFO("kept " << keep << " of " << bytes.size() << " bytes");
      const std::string cut = tmp.file("cut.pth");
      write_bytes(cut, bytes.substr(0, keep));
      CHECK_THROWS_AS(read_state_dict(cut), WeightsError);
    }
  }
  SECTION("not an archive") {
    const std::string junk = tmp.file("junk.pth");
    write_bytes(junk, "this is not a checkpoint at all");
    CHECK_THROWS_WITH(read_state_dict(junk), Catch::Contains("not a PyTorch archive"));
  }
  SECTION("legacy format") {
    const std::string legacy = tmp.file("legacy.pth");
    write_bytes(legacy, std::string("\x80\x02\x8a\x0a", 4) + "legacy magic number follows");
    CHECK_THROWS_WITH(read_state_dict(legacy), Catch::Contains("legacy"));
  }
  SECTION("truncated pickle inside a valid archive") {
    Pk pk;
    pk.op(0x80).op(2).global("collections", "OrderedDict").op(')').op('R').op('(').str("ab");
    pk.s.resize(pk.s.size() - 1);  // cut inside the string
    const std::string path = tmp.file("shortpickle.pth");
    write_archive(path, pk.s);
    CHECK_THROWS_WITH(read_state_dict(path), Catch::Contains("truncated") && Catch::Contains(path));
  }
  SECTION("storage record missing or too short") {
    // {'w': tensor of 4 floats in storage '0'}
    Pk pk;
    pk.op(0x80).op(2).op('}').op('(').str("w").global("torch._utils", "_rebuild_tensor_v2").op('(');
    pk.op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").op('K').op(4).op('t').op('Q');
    pk.op('K').op(0).op('K').op(4).op(0x85).op('K').op(1).op(0x85).op(0x89).op('}').op('t').op('R').op('u').op('.');
    const std::string ok = tmp.file("ok.pth");
    write_archive(ok, pk.s, std::string(16, '\0'));
    const auto sd = read_state_dict(ok);
    REQUIRE(sd.size() == 1);
    CHECK(sd["w"].sizes() == torch::IntArrayRef({4}));
    const std::string none = tmp.file("nostorage.pth");
    write_archive(none, pk.s);
    CHECK_THROWS_WITH(read_state_dict(none), Catch::Contains("data/0") && Catch::Contains("missing"));
    const std::string shortst = tmp.file("shortstorage.pth");
    write_archive(shortst, pk.s, std::string(8, '\0'));
    CHECK_THROWS_WITH(read_state_dict(shortst), Catch::Contains("8 bytes, 16 expected"));
  }
  SECTION("an object that is not a state dict") {
    Pk pk;
    pk.op(0x80).op(2).global("os", "system").str("ls").op(0x85).op('R').op('.');
    const std::string path = tmp.file("evil.pth");
    write_archive(path, pk.s);
    CHECK_THROWS_WITH(read_state_dict(path), Catch::Contains("os.system"));
  }
}

TEST_CASE("weights: forged pickles cannot overflow sizes, recurse, leak or expand without bound", "[weights]") {
  TempDir tmp;
  // A tensor of storage '0' (FloatStorage holding `numel`) with the given size and stride.
  auto tensor_pickle = [](int64_t numel, int64_t size, int64_t stride) {
    auto long8 = [](Pk& pk, int64_t v) {
      pk.op(0x8a).op(8);
      for (int k = 0; k < 8; ++k) pk.op(static_cast<int>((static_cast<uint64_t>(v) >> (8 * k)) & 0xff));
    };
    Pk pk;
    pk.op(0x80).op(2).op('}').op('(').str("w").global("torch._utils", "_rebuild_tensor_v2").op('(');
    pk.op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu");
    long8(pk, numel);
    pk.op('t').op('Q').op('K').op(0);
    long8(pk, size);
    pk.op(0x85);
    long8(pk, stride);
    pk.op(0x85).op(0x89).op('}').op('t').op('R').op('u').op('.');
    return pk.s;
  };
  SECTION("a storage size whose byte count overflows") {
    const std::string path = tmp.file("numel.pth");
    write_archive(path, tensor_pickle(int64_t{1} << 62, 4, 1), std::string(16, '\0'));
    CHECK_THROWS_WITH(read_state_dict(path), Catch::Contains("declares 4611686018427387904 elements"));
  }
  SECTION("a size and stride whose product overflows") {
    const std::string path = tmp.file("stride.pth");
    write_archive(path, tensor_pickle(4, int64_t{1} << 62, int64_t{1} << 62), std::string(16, '\0'));
    CHECK_THROWS_WITH(read_state_dict(path), Catch::Contains("overflow"));
  }
  SECTION("containers nested a million deep, and a list that holds itself") {
    Pk pk;
    pk.op(0x80).op(2);
    const int depth = 1000000;
    pk.s.append(depth, ']');
    pk.s.append(depth - 1, 'a');
    pk.op('q').op(0).op('h').op(0).op('a').op('.');  // the outermost list appended to itself
    const std::string path = tmp.file("deep.pth");
    write_archive(path, pk.s);
    CHECK_THROWS_WITH(read_state_dict(path), Catch::Contains("not a state dict"));
  }
  SECTION("one list copied into a dict again and again") {
    Pk pk;
    pk.op(0x80).op(2).op(']').op('q').op(0).op('(');
    for (int i = 0; i < 10000; ++i) pk.op('N').op('N').op(0x86);
    pk.op('e').op('0');
    pk.global("collections", "OrderedDict").op('q').op(1).op('0');
    pk.op('h').op(0).op(0x85).op('q').op(2).op('0');
    for (int i = 0; i < 100000; ++i) pk.op('h').op(1).op('h').op(2).op('R').op('0');
    pk.op('N').op('.');
    const std::string path = tmp.file("bomb.pth");
    write_archive(path, pk.s);
    CHECK_THROWS_WITH(read_state_dict(path), Catch::Contains("expands to more than"));
  }
}

TEST_CASE("weights: a state dict saved by PyTorch 2.x on a GPU reads as PyTorch wrote it", "[weights]") {
  // tests/lib/fixtures/make_torch2_state_dict.py wrote it with torch 2.6 (byteorder and
  // serialization_id records, storages tagged cuda:0); the tensors are made the same way here.
  const std::string path =
      cxrtest::env_or("CXR_SOURCE_ROOT", ".") + "/tests/lib/fixtures/torch2.6-state-dict.pt";
  const StateDict d = read_state_dict(path);
  const auto base = torch::arange(20, torch::kFloat) / 8;
  const std::vector<std::pair<std::string, torch::Tensor>> expected = {
      {"conv.weight", (torch::arange(54, torch::kFloat) / 10 - 2).reshape({2, 3, 3, 3})},
      {"bn.running_mean", torch::tensor({0.5f, -0.25f})},
      {"bn.num_batches_tracked", torch::tensor(int64_t{7})},
      {"half.weight", (torch::arange(6, torch::kHalf) / 4).reshape({2, 3})},
      {"bf16.weight", torch::tensor({1.5f, -2.0f, 0.0078125f}).to(torch::kBFloat16)},
      {"double.bias", torch::tensor({1e-300, 3.25}, torch::kDouble)},
      {"view.slice", base.slice(0, 5, 10)},
      {"view.matrix", base.slice(0, 10, 20).view({2, 5})},
      {"view.transposed", base.slice(0, 0, 6).view({2, 3}).t()},
      {"mask", torch::tensor({true, false, true})},
      {"bytes", torch::tensor({0, 255, 7}, torch::kUInt8)},
  };
  REQUIRE(d.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& [name, want] = expected[i];
    INFO(name);
    CHECK(d.keys()[i] == name);  // in the order saved
    const torch::Tensor& got = d[name];
    CHECK(got.device().is_cpu());
    CHECK(got.scalar_type() == want.scalar_type());
    CHECK(got.sizes() == want.sizes());
    CHECK(got.strides() == want.strides());  // views keep their layout
    CHECK(torch::equal(got, want));
  }
  // The three views share one storage, as in the file.
  CHECK(d["view.slice"].storage().is_alias_of(d["view.matrix"].storage()));
  CHECK(d["view.matrix"].storage_offset() == 10);
}
