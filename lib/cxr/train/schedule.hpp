// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Learning-rate schedules stepped once per epoch, with the values torch.optim.lr_scheduler gives.
#include <string>

namespace cxr::train {

enum class Scheduler { None, Cosine, Step };

/// "none", "cosine", "step"; throws cxr::InvalidArgument otherwise.
Scheduler scheduler_from_string(const std::string& s);
const char* to_string(Scheduler s);

struct ScheduleParams {
  Scheduler kind = Scheduler::Cosine;
  double lr = 0.01;      ///< the optimizer's initial learning rate
  double lr_end = 0.001; ///< cosine: eta_min
  int epochs = 0;        ///< cosine: T_max (must be > 0)
  int step_size = 10;    ///< step: epochs between decays
  double gamma = 0.1;    ///< step: decay factor
};

/// The learning rate of epoch `epoch` (0-based), i.e. after `epoch` calls of scheduler.step():
/// cosine as CosineAnnealingLR(T_max=epochs, eta_min=lr_end) computes it (its recursive form,
/// so the values match torch's to the last bit or nearly; past T_max it rises again as torch's
/// does), step as StepLR(step_size, gamma), none: lr. Throws cxr::InvalidArgument for
/// parameters out of range.
double learning_rate(const ScheduleParams& params, int epoch);

/// CosineAnnealingLR's closed form: eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2.
double cosine_closed_form(double lr, double eta_min, int epoch, int t_max);

}  // namespace cxr::train
