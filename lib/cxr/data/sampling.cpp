// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/data/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

#include "cxr/error.hpp"

namespace cxr::data {

namespace {

// Fisher-Yates with our own draws: std::shuffle's use of the engine is implementation-defined,
// and splits must not change with the standard library.
void shuffle(std::vector<size_t>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng() % i);
    std::swap(v[i - 1], v[j]);
  }
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

}  // namespace

void undersample(Dataset& ds, const std::string& spec, uint64_t seed) {
  if (trim(spec).empty()) return;
  if (ds.task != Task::Multiclass) throw InvalidArgument("undersample: needs a multiclass dataset");
  std::vector<size_t> target(ds.classes.size(), SIZE_MAX);
  const auto counts = ds.class_counts();
  if (trim(spec) == "balance") {
    const uint64_t m = *std::min_element(counts.begin(), counts.end());
    std::fill(target.begin(), target.end(), static_cast<size_t>(m));
  } else {
    std::stringstream ss(spec);
    for (std::string item; std::getline(ss, item, ',');) {
      const auto colon = item.rfind(':');
      if (colon == std::string::npos)
        throw InvalidArgument("undersample: expected 'class:count' or 'balance', got '" + item + "'");
      const std::string name = trim(item.substr(0, colon));
      const auto it = std::find(ds.classes.begin(), ds.classes.end(), name);
      if (it == ds.classes.end()) {
        std::string all;
        for (const auto& c : ds.classes) all += (all.empty() ? "" : ", ") + c;
        throw InvalidArgument("undersample: unknown class '" + name + "' (classes: " + all + ")");
      }
      char* end = nullptr;
      const std::string num = trim(item.substr(colon + 1));
      const unsigned long long n = std::strtoull(num.c_str(), &end, 10);
      if (num.empty() || *end) throw InvalidArgument("undersample: bad count '" + num + "' for " + name);
      target[it - ds.classes.begin()] = static_cast<size_t>(n);
    }
  }
  std::mt19937_64 rng(seed);
  std::vector<bool> keep(ds.samples.size(), true);
  for (size_t c = 0; c < ds.classes.size(); ++c) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < ds.samples.size(); ++i)
      if (ds.samples[i].label == static_cast<int>(c)) idx.push_back(i);
    if (idx.size() <= target[c]) continue;
    shuffle(idx, rng);
    for (size_t k = target[c]; k < idx.size(); ++k) keep[idx[k]] = false;
  }
  std::vector<Sample> kept;
  for (size_t i = 0; i < ds.samples.size(); ++i)
    if (keep[i]) kept.push_back(std::move(ds.samples[i]));
  ds.samples = std::move(kept);
}

std::vector<double> parse_fractions(const std::string& text) {
  std::vector<double> f;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    const std::string t = trim(item);
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end || !(v >= 0 && v <= 1))
      throw InvalidArgument("split: '" + t + "' is not a fraction in [0, 1] (expected e.g. 0.7,0.15,0.15)");
    f.push_back(v);
  }
  if (f.size() == 2) f.push_back(0.0);
  if (f.size() != 3) throw InvalidArgument("split: expected 2 or 3 fractions (train,val[,test]), got '" + text + "'");
  const double sum = f[0] + f[1] + f[2];
  if (std::fabs(sum - 1.0) > 1e-6) throw InvalidArgument("split: fractions sum to " + std::to_string(sum) + ", not 1");
  return f;
}

void assign_splits(Dataset& ds, const SplitParams& params) {
  if (params.fractions.size() != 3) throw InvalidArgument("assign_splits: need 3 fractions");
  std::mt19937_64 rng(params.seed);
  const Split order[3] = {Split::Train, Split::Val, Split::Test};
  // The pool: scans the index leaves unassigned or in train. Scans it puts in val or test stay
  // there (an official test set stays the test set; val is carved out of its train part).
  std::vector<size_t> pool;
  for (size_t i = 0; i < ds.samples.size(); ++i)
    if (ds.samples[i].split == Split::None || ds.samples[i].split == Split::Train) pool.push_back(i);
  const bool patients = params.by_patient && std::any_of(pool.begin(), pool.end(), [&](size_t i) {
    return !ds.samples[i].patient_id.empty();
  });
  const bool multiclass = ds.task == Task::Multiclass;
  // Units: a patient's scans together, or single scans. Each unit has a stratum: its class
  // (a patient's most frequent class, the lowest on a tie) for multiclass data, else one stratum.
  std::map<std::string, size_t> unit_of;
  std::vector<std::vector<size_t>> units;
  for (size_t i : pool) {
    const std::string key = patients && !ds.samples[i].patient_id.empty() ? ds.samples[i].patient_id
                                                                          : "#" + std::to_string(i);
    auto [it, fresh] = unit_of.emplace(key, units.size());
    if (fresh) units.emplace_back();
    units[it->second].push_back(i);
  }
  std::map<int, std::vector<size_t>> strata;  // stratum -> units, in first-seen order
  for (size_t u = 0; u < units.size(); ++u) {
    int stratum = -1;
    if (multiclass) {
      std::map<int, size_t> votes;
      for (size_t i : units[u]) votes[ds.samples[i].label]++;
      size_t best = 0;
      for (const auto& [label, n] : votes)
        if (n > best) best = n, stratum = label;
    }
    strata[stratum].push_back(u);
  }
  for (auto& [stratum, us] : strata) {
    shuffle(us, rng);
    if (!patients) {
      // Single scans: exact counts per stratum, as train_test_split(stratify=...) gives.
      const size_t n = us.size();
      const size_t n_train = static_cast<size_t>(std::llround(params.fractions[0] * n));
      const size_t n_val = std::min(n - n_train, static_cast<size_t>(std::llround(params.fractions[1] * n)));
      for (size_t k = 0; k < n; ++k)
        ds.samples[units[us[k]][0]].split = order[k < n_train ? 0 : (k < n_train + n_val ? 1 : 2)];
      continue;
    }
    // Patients: fill the splits in order by scan count, each patient placed by its centre.
    size_t scans = 0;
    for (size_t u : us) scans += units[u].size();
    const double n = static_cast<double>(scans);
    const double bound[2] = {params.fractions[0] * n, (params.fractions[0] + params.fractions[1]) * n};
    size_t done = 0;
    for (size_t u : us) {
      const double mid = done + units[u].size() / 2.0;
      const int s = mid < bound[0] ? 0 : (mid < bound[1] ? 1 : 2);
      for (size_t i : units[u]) ds.samples[i].split = order[s];
      done += units[u].size();
    }
  }
}

std::vector<Phase> epoch_schedule(const Dataset& ds, unsigned epochs, bool shuffle_train, uint64_t seed) {
  std::vector<Phase> phases;
  if (epochs == 0) return phases;
  std::vector<size_t> by_split[4];
  for (size_t i = 0; i < ds.samples.size(); ++i) by_split[static_cast<int>(ds.samples[i].split)].push_back(i);
  const bool split = !by_split[1].empty() || !by_split[2].empty() || !by_split[3].empty();
  auto add = [&](unsigned epoch, Split s, std::vector<size_t> order, bool shuffled) {
    if (order.empty()) return;
    if (shuffled) {
      // Each epoch's order depends only on (seed, epoch).
      std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + epoch + 1);
      shuffle(order, rng);
    }
    phases.push_back({epoch, s, std::move(order)});
  };
  for (unsigned e = 0; e < epochs; ++e) {
    if (split) {
      add(e, Split::Train, by_split[1], shuffle_train);
      add(e, Split::Val, by_split[2], false);
    } else {
      add(e, Split::None, by_split[0], shuffle_train);
    }
  }
  if (split) {
    add(epochs - 1, Split::Test, by_split[3], false);
    add(epochs - 1, Split::None, by_split[0], false);
  }
  return phases;
}

std::vector<Phase> shard_phases(std::vector<Phase> phases, unsigned rank, unsigned world) {
  if (world == 0 || rank >= world)
    throw InvalidArgument("rank " + std::to_string(rank) + " is outside a world of " + std::to_string(world));
  if (world == 1) return phases;
  for (auto& ph : phases) {
    std::vector<size_t> order = std::move(ph.order);
    if (ph.split == Split::Train && !order.empty()) {
      const size_t n = order.size();
      const size_t padded = (n + world - 1) / world * world;
      for (size_t i = n; i < padded; ++i) order.push_back(order[(i - n) % n]);
    }
    ph.order.clear();
    for (size_t i = rank; i < order.size(); i += world) ph.order.push_back(order[i]);
  }
  return phases;
}

}  // namespace cxr::data
