// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// State dicts in PyTorch's own file format, without Python.
///
/// Reads what `torch.save(model.state_dict(), path)` writes (the zip format: `<name>/data.pkl`, a
/// pickle of an OrderedDict of tensors whose storages live in `<name>/data/<key>`, plus
/// `<name>/version`), and writes the same, so that Python's `torch.load` returns a state dict
/// that torchvision's `load_state_dict(strict=True)` accepts. The unpickler understands the
/// opcodes torch.save emits (protocol 2, and the protocol 4 forms for files from newer Pythons)
/// and only the globals a state dict holds: collections.OrderedDict, torch.*Storage and
/// torch._utils._rebuild_tensor(_v2)/_rebuild_parameter. The `_metadata` attribute of a state
/// dict is read and dropped. Anything else is refused with a WeightsError.
///
/// Why not LibTorch's own `torch::pickle_load`: it is the TorchScript unpickler, made for what
/// torch.jit and `torch::pickle_save` emit. Given what Python's `torch.save` writes, LibTorch
/// 1.13's fails: a torchvision state dict (an OrderedDict carrying `_metadata`) stops on an
/// internal assertion ("Expected GenericDict but got None"), and a plain dict of tensors on the
/// SETITEM opcode ("Unknown opcode for unpickling at 0x73"). Its zip container
/// (caffe2::serialize::PyTorchStreamReader / Writer) is used here; the pickle inside is read by
/// this file's own small unpickler, which accepts only what a state dict holds, with bounded
/// depth and expansion (fuzzed: tests/fuzz, target `weights`).
#include <torch/nn/module.h>
#include <torch/ordered_dict.h>

#include <string>
#include <vector>

#include "cxr/error.hpp"

namespace cxr::models {

class ClassifierImpl;

/// A weights file is missing, corrupt, truncated, of an unsupported kind, or does not fit the
/// model; the message names the file and what is wrong.
class WeightsError : public cxr::Error {
 public:
  using cxr::Error::Error;
};

/// Parameter and buffer tensors by dotted name, in torchvision's order.
using StateDict = torch::OrderedDict<std::string, torch::Tensor>;

/// Reads a state dict saved by torch.save (zip format). A checkpoint dict that holds the state
/// dict under "state_dict" or "model" (and nothing but tensors there) is unwrapped.
StateDict read_state_dict(const std::string& path);

/// Writes `dict` as torch.save would (zip format, pickle protocol 2, record "version" = 3).
/// Tensors are saved from CPU, contiguous. The file is written under a temporary name and
/// renamed, so a failed write leaves no partial file.
void write_state_dict(const StateDict& dict, const std::string& path);

/// The module's parameters and buffers (including BatchNorm's num_batches_tracked), named and
/// ordered as PyTorch's Module.state_dict() does.
StateDict state_dict(const torch::nn::Module& module);

struct LoadOptions {
  bool strict = true;                       ///< unexpected or missing keys are errors
  std::vector<std::string> skip_prefixes;   ///< keys under these prefixes are ignored on both sides
};

/// Copies `dict` into the module's parameters and buffers (dtype converted, device kept).
/// Shape mismatches are always errors; missing/unexpected keys when strict. `source` names the
/// origin in error messages.
void load_state_dict(torch::nn::Module& module, const StateDict& dict, const LoadOptions& options = {},
                     const std::string& source = "state dict");

/// Loads a whole checkpoint of this architecture (strict). Throws if the module is folded.
void load_weights(ClassifierImpl& model, const std::string& path);

/// Transfer learning: loads everything but the head (e.g. ImageNet weights into a model with
/// another number of classes); the head keeps its fresh initialisation.
void load_backbone(ClassifierImpl& model, const std::string& path);

/// Saves the model's state dict (throws if it is folded: folded weights are not torchvision's).
void save_weights(const ClassifierImpl& model, const std::string& path);

}  // namespace cxr::models
