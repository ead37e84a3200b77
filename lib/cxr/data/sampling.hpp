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

/// Assigns train/val/test to the scans the index left unassigned or in train; scans the index
/// put in val or test keep their split (so `0.85,0.15` carves a validation set out of a train
/// split while an official test split stays whole). Stratified by class for multiclass data;
/// patient-grouped when patient ids are present: no patient ends up in two splits, and each
/// patient counts towards its most frequent class (patients shuffled per class, then filled
/// into splits in order until each split's share of that class's scans is reached).
/// Deterministic for a seed.
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

/// Rank `rank`'s share of every phase in a data-parallel job of `world` processes, as PyTorch's
/// DistributedSampler takes it: every rank holds the same (seeded) order; a train phase is padded
/// to a multiple of `world` by repeating its first scans, so that every rank runs the same number
/// of steps; rank r takes the items r, r+world, r+2*world, ... Other phases are not padded (their
/// predictions are gathered, and a repeat would count twice). A phase whose share is empty stays,
/// so that every rank goes through the same phases. world 1 returns `phases` unchanged. Throws
/// cxr::InvalidArgument for rank >= world or world 0.
std::vector<Phase> shard_phases(std::vector<Phase> phases, unsigned rank, unsigned world);

}  // namespace cxr::data
