// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Splits, undersampling and the epoch schedule of a training stream.
#include <cstdint>
#include <string>
#include <vector>

#include "cxr/data/dataset.hpp"

namespace cxr::data {

/// Cuts classes down at random (seeded), as the study cut "normal" to the size of the COVID
/// class. spec: "balance" (every class to the smallest class's count) or "name:N[,name:N...]".
/// Multiclass only. Keeps the remaining scans in their original order. Throws InvalidArgument
/// for an unknown class or a malformed spec.
void undersample(Dataset& ds, const std::string& spec, uint64_t seed);

struct SplitParams {
  std::vector<double> fractions;  ///< train, val, test; must sum to 1 (within 1e-6)
  uint64_t seed = 30;
  /// Keep each patient's scans in one split (ChestX-ray8 needs this). Automatic when any
  /// sample has a patient id.
  bool by_patient = true;
};

/// Parses "0.7,0.15,0.15" (two values: train/val; three: train/val/test).
std::vector<double> parse_fractions(const std::string& text);

/// Assigns train/val/test to every sample. Stratified by class for multiclass data (each
/// class split in the given fractions, rounded), patient-grouped when patient ids are present
/// (patients shuffled, then filled into splits in order until each split's share of scans is
/// reached): no patient ends up in two splits. Deterministic for a seed.
void assign_splits(Dataset& ds, const SplitParams& params);

struct Phase {
  unsigned epoch = 0;
  Split split = Split::None;
  std::vector<size_t> order;  ///< indexes into Dataset::samples
};

/// The stream's phases: with splits, per epoch train (reshuffled each epoch when shuffle) then
/// val, and test once after the last epoch; scans without a split come last, once. Without
/// splits, every scan each epoch (reshuffled when shuffle). Empty phases are left out.
std::vector<Phase> epoch_schedule(const Dataset& ds, unsigned epochs, bool shuffle, uint64_t seed);

}  // namespace cxr::data
