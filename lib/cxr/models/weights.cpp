// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/weights.hpp"

#include <caffe2/serialize/inline_container.h>
#include <torch/types.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <unordered_map>

#include "cxr/models/classifier.hpp"

namespace cxr::models {
namespace {

// ---- reading -------------------------------------------------------------------------------

// Values are owned by the unpickler's arena and point at each other with plain pointers: a
// pickle may build cycles (a list appended to itself through the memo) and nest containers
// thousands deep, and neither must leak or recurse when the values are freed.
struct Value;
using ValuePtr = Value*;

struct Value {
  enum class Kind { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;  // String, Bytes, Global ("module.name")
  std::vector<ValuePtr> items;
  std::vector<std::pair<ValuePtr, ValuePtr>> dict;
  at::Tensor tensor;  // Tensor; Storage as a flat tensor over the whole storage
};

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::Bytes: return "bytes";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Global: return "global";
    case Value::Kind::Storage: return "storage";
    case Value::Kind::Tensor: return "tensor";
  }
  return "?";
}

at::ScalarType storage_dtype(const std::string& global) {
  static const std::map<std::string, at::ScalarType> types{
      {"torch.FloatStorage", at::kFloat},   {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong}, {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},     {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool},     {"torch.UntypedStorage", at::kByte},
  };
  auto it = types.find(global);
  if (it == types.end()) throw WeightsError("unsupported storage type " + global);
  return it->second;
}

/// The unpickler: a stack machine over the opcodes torch.save emits.
class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, caffe2::serialize::PyTorchStreamReader& reader)
      : p_(data), end_(data + size), reader_(reader), max_entries_(16 * size + 65536) {}

  ValuePtr run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;                 // PROTO
        case 0x95: take(8); break;                // FRAME
        case '.': {                               // STOP
          if (stack_.size() != 1) fail("pickle ends with " + std::to_string(stack_.size()) + " values on the stack");
          return stack_.back();
        }
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case ')': push(make(Value::Kind::Tuple)); break;   // EMPTY_TUPLE
        case 't': push(tuple(pop_mark())); break;          // TUPLE
        case 0x85: push(tuple(pop_n(1))); break;           // TUPLE1
        case 0x86: push(tuple(pop_n(2))); break;           // TUPLE2
        case 0x87: push(tuple(pop_n(3))); break;           // TUPLE3
        case ']': push(make(Value::Kind::List)); break;    // EMPTY_LIST
        case 'l': {                                        // LIST
          auto v = make(Value::Kind::List);
          v->items = pop_mark();
          count_entries(v->items.size());
          push(v);
          break;
        }
        case 'a': {                                        // APPEND
          auto x = pop();
          count_entries(1);
          expect(top(), Value::Kind::List, "APPEND")->items.push_back(x);
          break;
        }
        case 'e': {                                        // APPENDS
          auto xs = pop_mark();
          count_entries(xs.size());
          auto& l = expect(top(), Value::Kind::List, "APPENDS")->items;
          l.insert(l.end(), xs.begin(), xs.end());
          break;
        }
        case '}': push(make(Value::Kind::Dict)); break;    // EMPTY_DICT
        case 'd': {                                        // DICT
          auto xs = pop_mark();
          auto v = make(Value::Kind::Dict);
          set_items(*v, xs);
          push(v);
          break;
        }
        case 's': {                                        // SETITEM
          auto val = pop();
          auto key = pop();
          set_items(*expect(top(), Value::Kind::Dict, "SETITEM"), {key, val});
          break;
        }
        case 'u': {                                        // SETITEMS
          auto xs = pop_mark();
          set_items(*expect(top(), Value::Kind::Dict, "SETITEMS"), xs);
          break;
        }
        case 'N': push(make(Value::Kind::None)); break;
        case 0x88: push(boolean(true)); break;             // NEWTRUE
        case 0x89: push(boolean(false)); break;            // NEWFALSE
        case 'J': push(integer(static_cast<int32_t>(le(4)))); break;  // BININT
        case 'K': push(integer(static_cast<int64_t>(le(1)))); break;  // BININT1
        case 'M': push(integer(static_cast<int64_t>(le(2)))); break;  // BININT2
        case 0x8a: {                                       // LONG1
          const size_t n = byte();
          if (n > 8) fail("integer wider than 64 bits");
          uint64_t u = n ? le(n) : 0;
          if (n && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~uint64_t{0} << (8 * n);  // sign-extend
          push(integer(static_cast<int64_t>(u)));
          break;
        }
        case 'G': {                                        // BINFLOAT (big-endian)
          const uint8_t* b = take(8);
          uint64_t u = 0;
          for (int k = 0; k < 8; ++k) u = (u << 8) | b[k];
          auto v = make(Value::Kind::Float);
          std::memcpy(&v->f, &u, 8);
          push(v);
          break;
        }
        case 'X': push(str(le(4), Value::Kind::String)); break;     // BINUNICODE
        case 0x8c: push(str(byte(), Value::Kind::String)); break;   // SHORT_BINUNICODE
        case 0x8d: push(str(le(8), Value::Kind::String)); break;    // BINUNICODE8
        case 'T': push(str(le(4), Value::Kind::String)); break;     // BINSTRING
        case 'U': push(str(byte(), Value::Kind::String)); break;    // SHORT_BINSTRING
        case 'B': push(str(le(4), Value::Kind::Bytes)); break;      // BINBYTES
        case 'C': push(str(byte(), Value::Kind::Bytes)); break;     // SHORT_BINBYTES
        case 'c': {                                        // GLOBAL
          auto module = line();
          auto name = line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {                                       // STACK_GLOBAL
          auto name = expect(pop(), Value::Kind::String, "STACK_GLOBAL");
          auto module = expect(pop(), Value::Kind::String, "STACK_GLOBAL");
          push(global(module->s + "." + name->s));
          break;
        }
        case 'R': {                                        // REDUCE
          auto args = expect(pop(), Value::Kind::Tuple, "REDUCE");
          auto fn = expect(pop(), Value::Kind::Global, "REDUCE");
          push(reduce(fn->s, args->items));
          break;
        }
        case 'b': {                                        // BUILD: a state dict's _metadata; dropped
          pop();
          top();
          break;
        }
        case 'Q': push(persistent(pop())); break;          // BINPERSID
        case 'q': memo_[le(1)] = top(); break;             // BINPUT
        case 'r': memo_[le(4)] = top(); break;             // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;     // MEMOIZE
        case 'h': push(get(le(1))); break;                 // BINGET
        case 'j': push(get(le(4))); break;                 // LONG_BINGET
        case '0': pop(); break;                            // POP
        case '1': pop_mark(); break;                       // POP_MARK
        case '2': push(top()); break;                      // DUP
        default: {
          char buf[64];
          std::snprintf(buf, sizeof buf, "unsupported pickle opcode 0x%02x at byte %zu", op,
                        static_cast<size_t>(p_ - 1 - begin()));
          fail(buf);
        }
      }
    }
  }

  void set_begin(const uint8_t* b) { begin_ = b; }

 private:
  [[noreturn]] void fail(const std::string& why) { throw WeightsError(why); }
  const uint8_t* begin() const { return begin_ ? begin_ : p_; }

  const uint8_t* take(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) fail("pickle truncated (data.pkl ends inside an opcode)");
    const uint8_t* r = p_;
    p_ += n;
    return r;
  }
  uint8_t byte() { return *take(1); }
  uint64_t le(size_t n) {
    const uint8_t* b = take(n);
    uint64_t u = 0;
    for (size_t k = 0; k < n; ++k) u |= static_cast<uint64_t>(b[k]) << (8 * k);
    return u;
  }
  std::string line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', static_cast<size_t>(end_ - p_)));
    if (!nl) fail("pickle truncated (GLOBAL without end of line)");
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(nl - p_));
    p_ = nl + 1;
    return s;
  }
  ValuePtr str(uint64_t n, Value::Kind k) {
    if (n > static_cast<uint64_t>(end_ - p_)) fail("pickle truncated (string runs past the end)");
    auto v = make(k);
    v->s.assign(reinterpret_cast<const char*>(take(n)), n);
    return v;
  }
  ValuePtr make(Value::Kind k) {
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }
  // Containers may share items (DUP, the memo), so a small pickle could otherwise ask for
  // copies of one long list again and again: the entries of all containers are bounded by the
  // pickle's size.
  void count_entries(size_t n) {
    entries_ += n;
    if (entries_ > max_entries_)
      fail("pickle expands to more than " + std::to_string(max_entries_) + " container entries (" +
           std::to_string(end_ - begin()) + " bytes of pickle)");
  }
  ValuePtr integer(int64_t i) {
    auto v = make(Value::Kind::Int);
    v->i = i;
    return v;
  }
  ValuePtr boolean(bool b) {
    auto v = make(Value::Kind::Bool);
    v->b = b;
    return v;
  }
  ValuePtr global(std::string name) {
    auto v = make(Value::Kind::Global);
    v->s = std::move(name);
    return v;
  }
  ValuePtr tuple(std::vector<ValuePtr> items) {
    count_entries(items.size());
    auto v = make(Value::Kind::Tuple);
    v->items = std::move(items);
    return v;
  }

  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  ValuePtr pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("pickle stack underflow");
    auto v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  const ValuePtr& top() {
    if (stack_.empty()) fail("pickle stack underflow");
    return stack_.back();
  }
  std::vector<ValuePtr> pop_mark() {
    if (marks_.empty()) fail("pickle MARK missing");
    const size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) fail("pickle stack underflow");
    std::vector<ValuePtr> xs(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(m)),
                             std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return xs;
  }
  std::vector<ValuePtr> pop_n(size_t n) {
    std::vector<ValuePtr> xs(n);
    for (size_t k = n; k-- > 0;) xs[k] = pop();
    return xs;
  }
  ValuePtr get(uint64_t id) {
    auto it = memo_.find(id);
    if (it == memo_.end()) fail("pickle refers to memo entry " + std::to_string(id) + " that was never stored");
    return it->second;
  }
  ValuePtr expect(const ValuePtr& v, Value::Kind k, const char* op) {
    if (v->kind != k) {
      fail(std::string("unexpected ") + kind_name(v->kind) + " for " + op + " (expected " + kind_name(k) + ")");
    }
    return v;
  }
  void set_items(Value& d, const std::vector<ValuePtr>& xs) {
    if (xs.size() % 2) fail("odd number of items for a dict");
    count_entries(xs.size());
    for (size_t k = 0; k < xs.size(); k += 2) d.dict.emplace_back(xs[k], xs[k + 1]);
  }

  int64_t as_int(const ValuePtr& v, const char* what) {
    if (v->kind != Value::Kind::Int) fail(std::string(what) + " is a " + kind_name(v->kind) + ", expected int");
    return v->i;
  }
  std::vector<int64_t> int_tuple(const ValuePtr& v, const char* what) {
    if (v->kind != Value::Kind::Tuple) fail(std::string(what) + " is a " + kind_name(v->kind) + ", expected tuple");
    std::vector<int64_t> r;
    for (const auto& x : v->items) r.push_back(as_int(x, what));
    return r;
  }

  ValuePtr persistent(const ValuePtr& pid) {
    // ('storage', torch.XStorage, key, location, numel)
    if (pid->kind != Value::Kind::Tuple || pid->items.size() < 5 || pid->items[0]->kind != Value::Kind::String ||
        pid->items[0]->s != "storage" || pid->items[1]->kind != Value::Kind::Global ||
        pid->items[2]->kind != Value::Kind::String) {
      fail("unsupported persistent id (expected a storage reference)");
    }
    const std::string& key = pid->items[2]->s;
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    const at::ScalarType dtype = storage_dtype(pid->items[1]->s);
    const int64_t numel = as_int(pid->items[4], "storage size");
    const std::string record = "data/" + key;
    if (!reader_.hasRecord(record)) fail("storage record '" + record + "' is missing from the archive");
    auto [ptr, size] = reader_.getRecord(record);
    size_t need = 0;
    if (numel < 0 || __builtin_mul_overflow(static_cast<size_t>(numel), c10::elementSize(dtype), &need))
      fail("storage record '" + record + "' declares " + std::to_string(numel) + " elements");
    if (size < need) {
      fail("storage record '" + record + "' holds " + std::to_string(size) + " bytes, " + std::to_string(need) +
           " expected (truncated file?)");
    }
    c10::Storage storage(c10::Storage::use_byte_size_t(), need, std::move(ptr), /*allocator=*/nullptr,
                         /*resizable=*/false);
    auto v = make(Value::Kind::Storage);
    v->tensor = at::empty({0}, at::TensorOptions().dtype(dtype)).set_(storage, 0, {numel}, {1});
    storages_[key] = v;
    return v;
  }

  ValuePtr reduce(const std::string& fn, const std::vector<ValuePtr>& args) {
    if (fn == "collections.OrderedDict" || fn == "builtins.dict") {
      auto d = make(Value::Kind::Dict);
      if (!args.empty() && args[0]->kind == Value::Kind::List) {
        count_entries(args[0]->items.size());
        for (const auto& pair : args[0]->items) {
          if (pair->kind != Value::Kind::Tuple || pair->items.size() != 2) fail("OrderedDict item is not a pair");
          d->dict.emplace_back(pair->items[0], pair->items[1]);
        }
      }
      return d;
    }
    if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") {
      if (args.size() < 4) fail(fn + " with " + std::to_string(args.size()) + " arguments");
      if (args[0]->kind != Value::Kind::Storage) fail(fn + " without a storage");
      const at::Tensor& storage = args[0]->tensor;
      const int64_t offset = as_int(args[1], "storage offset");
      const auto size = int_tuple(args[2], "tensor size");
      const auto stride = int_tuple(args[3], "tensor stride");
      if (size.size() != stride.size()) fail("tensor size and stride differ in length");
      // The furthest element must lie inside the storage (computed without overflow: a forged
      // size or stride must not wrap around to a small offset).
      int64_t last = offset;
      bool empty = false;
      for (size_t k = 0; k < size.size(); ++k) {
        if (size[k] < 0 || stride[k] < 0) fail("negative tensor size or stride");
        if (size[k] == 0) empty = true;
      }
      for (size_t k = 0; k < size.size() && !empty; ++k) {
        int64_t span = 0;
        if (__builtin_mul_overflow(size[k] - 1, stride[k], &span) || __builtin_add_overflow(last, span, &last))
          fail("tensor size and stride overflow");
      }
      if (!empty && (offset < 0 || last >= storage.numel())) fail("tensor view runs past its storage");
      auto t = at::empty({0}, storage.options()).set_(storage.storage(), offset, size, stride);
      auto v = make(Value::Kind::Tensor);
      v->tensor = t;
      return v;
    }
    if (fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state") {
      if (args.empty() || args[0]->kind != Value::Kind::Tensor) fail(fn + " without a tensor");
      return args[0];
    }
    fail("the file holds a " + fn +
         " object; only state dicts (dicts of tensors) are supported here (TorchScript files: architecture = "
         "\"torchscript\")");
  }

  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* begin_ = nullptr;
  caffe2::serialize::PyTorchStreamReader& reader_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
  std::unordered_map<std::string, ValuePtr> storages_;
  std::vector<std::unique_ptr<Value>> arena_;
  size_t entries_ = 0;
  const size_t max_entries_;
};

bool is_tensor_dict(const Value& v) {
  if (v.kind != Value::Kind::Dict) return false;
  for (const auto& [k, x] : v.dict) {
    if (k->kind != Value::Kind::String || x->kind != Value::Kind::Tensor) return false;
  }
  return true;
}

StateDict to_state_dict(const Value& root, const std::string& path) {
  const Value* v = &root;
  if (v->kind == Value::Kind::Dict && !is_tensor_dict(*v)) {
    for (const auto& [k, x] : v->dict) {
      if (k->kind == Value::Kind::String && (k->s == "state_dict" || k->s == "model") && is_tensor_dict(*x)) {
        v = x;
        break;
      }
    }
  }
  if (!is_tensor_dict(*v)) {
    throw WeightsError(path + ": not a state dict (the pickled object is a " + std::string(kind_name(v->kind)) +
                       (v->kind == Value::Kind::Dict ? " whose values are not all tensors" : "") + ")");
  }
  StateDict sd;
  for (const auto& [k, x] : v->dict) {
    if (sd.contains(k->s)) throw WeightsError(path + ": key '" + k->s + "' appears twice");
    sd.insert(k->s, x->tensor);
  }
  return sd;
}

void check_readable(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError("cannot open weights file " + path + ": " + std::strerror(errno));
  char magic[4] = {0, 0, 0, 0};
  f.read(magic, 4);
  if (f.gcount() < 4) throw WeightsError(path + ": file too short to be a PyTorch archive");
  if (static_cast<unsigned char>(magic[0]) == 0x80) {
    throw WeightsError(path + ": legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with "
                              "torch.save(torch.load(path), path) in a current PyTorch");
  }
  if (std::memcmp(magic, "PK\x03\x04", 4) != 0) throw WeightsError(path + ": not a PyTorch archive (no zip header)");
}

// ---- writing -------------------------------------------------------------------------------

/// Pickle protocol 2, as Python's pickler writes a state dict (without memoisation, which
/// unpicklers do not need).
class Pickler {
 public:
  void proto() { op(0x80), op(2); }
  void stop() { op('.'); }
  void mark() { op('('); }
  void op(uint8_t o) { out_.push_back(static_cast<char>(o)); }
  void global(const std::string& module, const std::string& name) {
    op('c');
    out_ += module + "\n" + name + "\n";
  }
  void str(const std::string& s) {
    op('X');
    le(s.size(), 4);
    out_ += s;
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K'), le(static_cast<uint64_t>(v), 1);
    } else if (v >= 0 && v < 65536) {
      op('M'), le(static_cast<uint64_t>(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J'), le(static_cast<uint64_t>(static_cast<uint32_t>(static_cast<int32_t>(v))), 4);
    } else {
      op(0x8a), op(8), le(static_cast<uint64_t>(v), 8);
    }
  }
  void int_tuple(const std::vector<int64_t>& xs) {
    if (xs.empty()) return op(')');
    mark();
    for (auto x : xs) integer(x);
    op('t');
  }
  void ordered_dict() {
    global("collections", "OrderedDict");
    op(')');
    op('R');
  }
  const std::string& bytes() const { return out_; }

 private:
  void le(uint64_t v, int n) {
    for (int k = 0; k < n; ++k) out_.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
  }
  std::string out_;
};

const char* storage_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "FloatStorage";
    case at::kDouble: return "DoubleStorage";
    case at::kHalf: return "HalfStorage";
    case at::kBFloat16: return "BFloat16Storage";
    case at::kLong: return "LongStorage";
    case at::kInt: return "IntStorage";
    case at::kShort: return "ShortStorage";
    case at::kChar: return "CharStorage";
    case at::kByte: return "ByteStorage";
    case at::kBool: return "BoolStorage";
    default: throw WeightsError(std::string("cannot save tensors of type ") + c10::toString(t));
  }
}

bool has_prefix(const std::string& key, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes) {
    if (key == p || (key.size() > p.size() && key.compare(0, p.size(), p) == 0 && key[p.size()] == '.')) return true;
  }
  return false;
}

std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

std::string list_keys(const std::vector<std::string>& keys) {
  std::string s;
  for (size_t k = 0; k < keys.size() && k < 8; ++k) s += (k ? ", " : "") + keys[k];
  if (keys.size() > 8) s += ", ... (" + std::to_string(keys.size()) + " in all)";
  return s;
}

}  // namespace

StateDict read_state_dict(const std::string& path) {
  check_readable(path);
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord("data.pkl")) {
      throw WeightsError(path + ": no data.pkl in the archive" +
                         (reader.hasRecord("constants.pkl") ? std::string(" (a TorchScript file? use architecture = "
                                                                          "\"torchscript\")")
                                                            : std::string()));
    }
    auto [ptr, size] = reader.getRecord("data.pkl");
    const auto* data = static_cast<const uint8_t*>(ptr.get());
    Unpickler up(data, size, reader);
    up.set_begin(data);
    ValuePtr root;
    try {
      root = up.run();
    } catch (const WeightsError& e) {
      throw WeightsError(path + ": " + e.what());
    }
    return to_state_dict(*root, path);
  } catch (const c10::Error& e) {
    // The zip reader's messages carry a C++ backtrace; keep its first line.
    std::string msg = e.what_without_backtrace();
    throw WeightsError(path + ": corrupt or truncated PyTorch archive (" + msg.substr(0, msg.find('\n')) + ")");
  }
}

void write_state_dict(const StateDict& dict, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError("cannot write " + tmp + ": " + std::strerror(errno));
    try {
      caffe2::serialize::PyTorchStreamWriter writer([&](const void* buf, size_t n) -> size_t {
        out.write(static_cast<const char*>(buf), static_cast<std::streamsize>(n));
        return out ? n : 0;
      });
      Pickler pk;
      pk.proto();
      pk.ordered_dict();
      pk.mark();
      size_t key = 0;
      std::vector<std::pair<std::string, at::Tensor>> records;
      for (const auto& item : dict) {
        at::Tensor t = item.value().detach().to(at::kCPU).contiguous();
        const std::string storage_key = std::to_string(key++);
        pk.str(item.key());
        pk.global("torch._utils", "_rebuild_tensor_v2");
        pk.mark();
        {  // persistent id: ('storage', torch.XStorage, key, 'cpu', numel)
          pk.mark();
          pk.str("storage");
          pk.global("torch", storage_name(t.scalar_type()));
          pk.str(storage_key);
          pk.str("cpu");
          pk.integer(t.numel());
          pk.op('t');
          pk.op('Q');
        }
        pk.integer(0);
        pk.int_tuple(t.sizes().vec());
        pk.int_tuple(t.strides().vec());
        pk.op(0x89);  // requires_grad False
        pk.ordered_dict();  // backward hooks
        pk.op('t');
        pk.op('R');
        records.emplace_back("data/" + storage_key, t);
      }
      pk.op('u');
      pk.stop();
      writer.writeRecord("data.pkl", pk.bytes().data(), pk.bytes().size());
      for (const auto& [name, t] : records) writer.writeRecord(name, t.data_ptr(), t.nbytes());
      writer.writeEndOfFile();  // adds the "version" record
    } catch (const c10::Error& e) {
      std::string msg = e.what_without_backtrace();
      std::remove(tmp.c_str());
      throw IoError("cannot write " + path + ": " + msg.substr(0, msg.find('\n')));
    }
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw IoError("cannot write " + path + ": " + std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    std::remove(tmp.c_str());
    throw IoError("cannot rename " + tmp + " to " + path + ": " + err);
  }
}

StateDict state_dict(const torch::nn::Module& module) {
  StateDict sd;
  // Pre-order over modules, each one's parameters then buffers: PyTorch's state_dict() order.
  auto add = [&sd](const std::string& prefix, const torch::nn::Module& m) {
    for (const auto& p : m.named_parameters(/*recurse=*/false)) sd.insert(prefix + p.key(), p.value());
    for (const auto& b : m.named_buffers(/*recurse=*/false)) sd.insert(prefix + b.key(), b.value());
  };
  // The root separately: named_modules(include_self) needs it to be held by a shared_ptr.
  add("", module);
  for (const auto& m : module.named_modules("", /*include_self=*/false)) add(m.key() + ".", *m.value());
  return sd;
}

void load_state_dict(torch::nn::Module& module, const StateDict& dict, const LoadOptions& options,
                     const std::string& source) {
  StateDict own = state_dict(module);
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& item : own) {
    if (has_prefix(item.key(), options.skip_prefixes)) continue;
    const at::Tensor* src = dict.find(item.key());
    if (!src) {
      missing.push_back(item.key());
    } else if (src->sizes() != item.value().sizes()) {
      mismatched.push_back(item.key() + " " + shape_str(*src) + " in the file, " + shape_str(item.value()) +
                           " in the model");
    }
  }
  for (const auto& item : dict) {
    if (!own.contains(item.key()) && !has_prefix(item.key(), options.skip_prefixes)) unexpected.push_back(item.key());
  }
  std::string why;
  if (!mismatched.empty()) why += "shape mismatch: " + list_keys(mismatched) + "; ";
  if (options.strict && !missing.empty()) why += "missing keys: " + list_keys(missing) + "; ";
  if (options.strict && !unexpected.empty()) why += "unexpected keys: " + list_keys(unexpected) + "; ";
  if (!why.empty()) {
    throw WeightsError(source + " does not fit the " + module.name() + " model: " + why.substr(0, why.size() - 2));
  }
  torch::NoGradGuard no_grad;
  for (auto& item : own) {
    const at::Tensor* src = dict.find(item.key());
    if (src && !has_prefix(item.key(), options.skip_prefixes)) item.value().copy_(*src);
  }
}

void load_weights(ClassifierImpl& model, const std::string& path) {
  if (model.folded()) throw InvalidArgument("cannot load weights into a model whose BatchNorms are folded");
  load_state_dict(model, read_state_dict(path), LoadOptions{}, path);
}

void load_backbone(ClassifierImpl& model, const std::string& path) {
  if (model.folded()) throw InvalidArgument("cannot load weights into a model whose BatchNorms are folded");
  load_state_dict(model, read_state_dict(path), LoadOptions{true, {model.head_prefix()}}, path);
}

void save_weights(const ClassifierImpl& model, const std::string& path) {
  if (model.folded()) throw InvalidArgument("cannot save a model whose BatchNorms are folded (not torchvision's layout)");
  write_state_dict(state_dict(model), path);
}

}  // namespace cxr::models
