// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/train/schedule.hpp"

#include <cmath>

#include "cxr/error.hpp"

namespace cxr::train {

namespace {
constexpr double kPi = 3.14159265358979323846;
}

Scheduler scheduler_from_string(const std::string& s) {
  if (s == "none") return Scheduler::None;
  if (s == "cosine") return Scheduler::Cosine;
  if (s == "step") return Scheduler::Step;
  throw InvalidArgument("unknown scheduler '" + s + "' (expected none, cosine, step)");
}

const char* to_string(Scheduler s) {
  switch (s) {
    case Scheduler::None: return "none";
    case Scheduler::Cosine: return "cosine";
    case Scheduler::Step: return "step";
  }
  return "none";
}

double cosine_closed_form(double lr, double eta_min, int epoch, int t_max) {
  return eta_min + (lr - eta_min) * (1 + std::cos(kPi * epoch / t_max)) / 2;
}

double learning_rate(const ScheduleParams& p, int epoch) {
  if (epoch < 0) throw InvalidArgument("learning_rate: epoch must be >= 0, got " + std::to_string(epoch));
  if (!(p.lr > 0)) throw InvalidArgument("learning-rate must be > 0, got " + std::to_string(p.lr));
  switch (p.kind) {
    case Scheduler::None: return p.lr;
    case Scheduler::Step: {
      if (p.step_size <= 0) throw InvalidArgument("step-size must be > 0, got " + std::to_string(p.step_size));
      // StepLR's chainable form multiplies by gamma at every multiple of step_size.
      double lr = p.lr;
      for (int e = 1; e <= epoch; ++e)
        if (e % p.step_size == 0) lr *= p.gamma;
      return lr;
    }
    case Scheduler::Cosine: {
      if (p.epochs <= 0)
        throw InvalidArgument("the cosine schedule needs the number of epochs (set epochs, or a source that announces them)");
      if (p.lr_end < 0) throw InvalidArgument("lr-end must be >= 0, got " + std::to_string(p.lr_end));
      // torch's CosineAnnealingLR.get_lr(), step by step: the recursion, not the closed form,
      // is what a Python run sees.
      const double t = p.epochs, eta_min = p.lr_end, base = p.lr;
      double lr = base;
      for (int e = 1; e <= epoch; ++e) {
        if ((e - 1 - p.epochs) % (2 * p.epochs) == 0)
          lr = lr + (base - eta_min) * (1 - std::cos(kPi / t)) / 2;
        else
          lr = (1 + std::cos(kPi * e / t)) / (1 + std::cos(kPi * (e - 1) / t)) * (lr - eta_min) + eta_min;
      }
      return lr;
    }
  }
  return p.lr;
}

}  // namespace cxr::train
