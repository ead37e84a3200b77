// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/train/trainer.hpp"

#include <ATen/Parallel.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>

#include "cxr/error.hpp"
#include "cxr/models/classifier.hpp"
#include "cxr/models/input.hpp"
#include "cxr/models/weights.hpp"
#include "cxr/runtime/allocator.hpp"
#include "cxr/runtime/device.hpp"
#include "cxr/runtime/threads.hpp"
#include "cxr/train/distributed.hpp"
#include "cxr/train/loop.hpp"
#include "cxr/train/run_files.hpp"
#include "cxr/train/sync_batchnorm.hpp"
#include "cxr/util/csv.hpp"
#include "cxr/util/json.hpp"

namespace cxr::train {

namespace fs = std::filesystem;
using cxr::util::csv_field;
using cxr::util::json_number;
using cxr::util::JsonObject;

Optimizer optimizer_from_string(const std::string& s) {
  if (s == "adam") return Optimizer::Adam;
  if (s == "sgd") return Optimizer::SGD;
  throw InvalidArgument("unknown optimizer '" + s + "' (expected adam, sgd)");
}

const char* to_string(Optimizer o) { return o == Optimizer::Adam ? "adam" : "sgd"; }

const char* to_string(Phase p) {
  switch (p) {
    case Phase::Train: return "train";
    case Phase::Val: return "val";
    case Phase::Test: return "test";
    default: return "none";
  }
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string json_array(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + json_number(v[i]);
  return s + "]";
}

std::string json_matrix(const metrics::Confusion& m) {
  std::string s = "[";
  for (size_t i = 0; i < m.size(); ++i) {
    s += i ? ",[" : "[";
    for (size_t j = 0; j < m[i].size(); ++j) s += (j ? "," : "") + std::to_string(m[i][j]);
    s += "]";
  }
  return s + "]";
}

std::string report_json(const metrics::Report& r) {
  JsonObject o;
  o.add("n", r.n).add("loss", r.loss).add("accuracy", r.accuracy).add("f1", r.macro_f1);
  o.add_raw("class_f1", json_array(r.f1));
  o.add_raw("auroc", json_array(r.auroc)).add("macro_auroc", r.macro_auroc);
  if (r.multilabel) {
    std::string cc = "[";
    for (size_t c = 0; c < r.class_confusion.size(); ++c) cc += (c ? "," : "") + json_matrix(r.class_confusion[c]);
    o.add_raw("class_confusion", cc + "]");
  } else {
    o.add_raw("confusion", json_matrix(r.confusion));
  }
  return o.str();
}

// Scans, targets and outputs seen in one phase.
struct PhaseAccumulator {
  double loss_sum = 0;
  int64_t n = 0;
  std::vector<int> truth;
  std::vector<uint8_t> truth_multi;
  std::vector<float> probs;
  std::vector<std::string> paths;
  std::vector<uint64_t> indices;
  void clear() { *this = PhaseAccumulator(); }
};

// A phase's accumulator as bytes, for gathering the ranks' shares of a phase.
class Packer {
 public:
  template <class T>
  void put(const T& v) {
    s_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  template <class T>
  void put_vector(const std::vector<T>& v) {
    put(static_cast<uint64_t>(v.size()));
    s_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

class Unpacker {
 public:
  explicit Unpacker(const std::string& s) : s_(s) {}
  template <class T>
  T get() {
    T v;
    need(sizeof v);
    std::memcpy(&v, s_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  template <class T>
  std::vector<T> get_vector() {
    const uint64_t n = get<uint64_t>();
    if (n > (s_.size() - at_) / sizeof(T)) throw IoError("a rank sent a malformed phase record");
    std::vector<T> v(static_cast<size_t>(n));
    std::memcpy(v.data(), s_.data() + at_, static_cast<size_t>(n) * sizeof(T));
    at_ += static_cast<size_t>(n) * sizeof(T);
    return v;
  }

 private:
  void need(size_t n) const {
    if (s_.size() - at_ < n) throw IoError("a rank sent a truncated phase record");
  }
  const std::string& s_;
  size_t at_ = 0;
};

std::string pack(const PhaseAccumulator& a) {
  Packer p;
  p.put(a.loss_sum);
  p.put(a.n);
  p.put_vector(a.truth);
  p.put_vector(a.truth_multi);
  p.put_vector(a.probs);
  p.put_vector(a.indices);
  p.put(static_cast<uint64_t>(a.paths.size()));
  for (const auto& path : a.paths) p.put_vector(std::vector<char>(path.begin(), path.end()));
  return p.str();
}

PhaseAccumulator unpack(const std::string& bytes) {
  Unpacker u(bytes);
  PhaseAccumulator a;
  a.loss_sum = u.get<double>();
  a.n = u.get<int64_t>();
  a.truth = u.get_vector<int>();
  a.truth_multi = u.get_vector<uint8_t>();
  a.probs = u.get_vector<float>();
  a.indices = u.get_vector<uint64_t>();
  const uint64_t paths = u.get<uint64_t>();
  for (uint64_t i = 0; i < paths; ++i) {
    const auto c = u.get_vector<char>();
    a.paths.emplace_back(c.begin(), c.end());
  }
  return a;
}

}  // namespace

std::string epoch_line(const EpochRow& row, int epochs) {
  char total[16] = "?";
  if (epochs > 0) std::snprintf(total, sizeof total, "%d", epochs);
  char line[256];
  if (row.has_val)
    std::snprintf(line, sizeof line,
                  "cxrtrain epoch %d/%s  train loss %.4f f1 %.3f | val loss %.4f f1 %.3f acc %.3f | lr %.2g | %.1f s%s",
                  row.epoch + 1, total, row.train.loss, row.train.macro_f1, row.val.loss, row.val.macro_f1,
                  row.val.accuracy, row.lr, row.seconds, row.best ? " *" : "");
  else
    std::snprintf(line, sizeof line, "cxrtrain epoch %d/%s  train loss %.4f f1 %.3f | no val split | lr %.2g | %.1f s",
                  row.epoch + 1, total, row.train.loss, row.train.macro_f1, row.lr, row.seconds);
  return line;
}

std::string test_line(int best_epoch, double f1, double accuracy, int64_t scans, const std::string& output_dir) {
  char line[128];
  std::snprintf(line, sizeof line, "cxrtrain test (best epoch %d): f1 %.3f acc %.3f on %lld scans -> ", best_epoch + 1, f1,
                accuracy, static_cast<long long>(scans));
  return line + output_dir;
}

std::string EpochRow::json() const {
  JsonObject o;
  o.add("epoch", epoch).add("train_loss", train.loss).add("train_f1", train.macro_f1)
      .add("train_accuracy", train.accuracy);
  if (has_val)
    o.add("val_loss", val.loss).add("val_f1", val.macro_f1).add("val_accuracy", val.accuracy);
  else
    o.add_null("val_loss").add_null("val_f1").add_null("val_accuracy");
  o.add("lr", lr).add("seconds", seconds).add("best", best).add("train_scans", train.n).add("val_scans", val.n);
  JsonObject t;
  t.add("input", profile.input).add("forward", profile.forward).add("backward", profile.backward)
      .add("optimizer", profile.optimizer).add("waiting", profile.waiting);
  if (profile.allreduce > 0) t.add("allreduce", profile.allreduce);
  o.add("train_seconds", train_seconds).add_raw("train_profile", t.str());
  const metrics::Report& shown = has_val ? val : train;
  if (shown.multilabel) {
    o.add_raw(has_val ? "val_class_f1" : "train_class_f1", json_array(shown.f1));
    o.add_raw(has_val ? "val_auroc" : "train_auroc", json_array(shown.auroc));
  }
  return o.str();
}

struct Trainer::Impl {
  Trainer* owner = nullptr;
  TrainConfig cfg;
  int nc = 0;
  bool multilabel = false;
  torch::Device device{torch::kCPU};
  std::shared_ptr<models::ClassifierImpl> model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  LossSpec loss;
  bool size_known = false;

  // The batch being filled (CPU, [B, C, H, W]).
  torch::Tensor batch;
  std::vector<int64_t> batch_labels;
  std::vector<float> batch_multi;
  std::vector<std::string> batch_paths;
  std::vector<uint64_t> batch_indices;
  int64_t filled = 0;

  Phase phase = Phase::None;
  int epoch = -1;
  int64_t steps = 0;
  PhaseAccumulator acc;

  // An epoch whose train phase has closed, waiting for its val phase.
  bool pending = false;
  int pending_epoch = -1;
  metrics::Report pending_train;
  double lr = 0;
  std::chrono::steady_clock::time_point epoch_start;
  double pending_train_seconds = 0;  // wall time of the pending epoch's train phase
  EpochProfile profile;              // of the train phase running or pending

  int done = 0;  // epochs complete
  int best_epoch = -1;
  double best_val_loss = std::numeric_limits<double>::infinity();
  models::StateDict best_state;
  bool card_written = false;
  std::vector<std::string> metric_lines;
  metrics::Report test;
  uint64_t errors = 0;
  bool finished = false;
  double train_seconds = 0;
  std::unique_ptr<Communicator> comm;  // set in a data-parallel run

  bool primary() const { return !comm || comm->rank() == 0; }

  std::string file(const char* name) const { return (fs::path(cfg.output_dir) / name).string(); }

  int64_t slot_floats() const {
    return static_cast<int64_t>(cfg.input.channels) * cfg.input.height * cfg.input.width;
  }

  void allocate_batch() {
    batch = torch::zeros({cfg.batch_size, cfg.input.channels, cfg.input.height, cfg.input.width});
    size_known = true;
  }

  void build(Trainer& owner);
  void restore();
  void begin(Phase p, int e);
  void close_phase();
  void close_epoch(bool has_val, const metrics::Report& val);
  void run_batch();
  void average_gradients();
  void empty_step();
  void align_steps();
  int vote(int stepping);
  void gather_phase();
  void connect();
  metrics::Report report() const;
  void write_card();
  void write_state(const models::StateDict& dict, const char* name);
  void write_resume_archive();
  void write_summary();
};

void Trainer::Impl::build(Trainer&) {
  if (cfg.classes.empty()) throw InvalidArgument("cxrtrain: no classes (set a model card, or send a cxr-dataset event)");
  if (cfg.batch_size <= 0) throw InvalidArgument("batch-size must be > 0, got " + std::to_string(cfg.batch_size));
  if (cfg.output_dir.empty()) throw InvalidArgument("output-dir is not set");
  if (cfg.fixed_size && (cfg.input.height <= 0 || cfg.input.width <= 0))
    throw InvalidArgument("input-size must be positive");
  nc = static_cast<int>(cfg.classes.size());
  multilabel = cfg.task == models::Task::Multilabel;
  if (cfg.name.empty()) cfg.name = cfg.architecture;
  validate(cfg.dist);
  device = cxr::runtime::resolve_device(cfg.device);
  // One GPU per rank on a host, as torchrun's LOCAL_RANK says (unless the device names one).
  if (cfg.dist.distributed() && device.is_cuda() && cfg.device.find(':') == std::string::npos)
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(cfg.dist.local_rank));
  cxr::runtime::set_compute_threads(cfg.threads);
  cxr::runtime::use_caching_cpu_allocator();

  std::error_code ec;
  fs::create_directories(cfg.output_dir, ec);
  if (ec) throw IoError("cannot create output-dir " + cfg.output_dir + ": " + ec.message());

  // The seed fixes the initial weights and every later draw (dropout); the stream fixes the order.
  torch::manual_seed(cfg.seed);
  model = models::make_classifier(cfg.architecture, nc);
  if (!cfg.pretrained.empty()) models::load_backbone(*model, cfg.pretrained);
  model->to(device);

  std::vector<torch::Tensor> params;
  for (auto& item : model->named_parameters()) {
    const bool head = item.key().rfind(model->head_prefix() + ".", 0) == 0;
    if (cfg.freeze_backbone && !head) {
      item.value().set_requires_grad(false);
      continue;
    }
    params.push_back(item.value());
  }
  const double lr0 = learning_rate(ScheduleParams{Scheduler::None, cfg.schedule.lr}, 0);
  if (cfg.optimizer == Optimizer::Adam)
    optimizer = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(lr0).weight_decay(cfg.weight_decay));
  else
    optimizer = std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(lr0).momentum(cfg.momentum).weight_decay(cfg.weight_decay));

  // Loss weights.
  loss.multilabel = multilabel;
  if (!cfg.class_weights.empty()) {
    if (multilabel) throw InvalidArgument("class-weights apply to cross-entropy (multiclass); use pos-weight for multilabel");
    if (static_cast<int>(cfg.class_weights.size()) != nc)
      throw InvalidArgument("class-weights has " + std::to_string(cfg.class_weights.size()) + " values for " +
                            std::to_string(nc) + " classes");
    loss.class_weights = torch::tensor(cfg.class_weights).to(device);
  }
  if (cfg.pos_weight_auto) {
    if (!multilabel) throw InvalidArgument("pos-weight applies to multilabel tasks (BCE-with-logits)");
    if (static_cast<int>(cfg.class_counts.size()) != nc || cfg.dataset_size == 0)
      throw InvalidArgument("pos-weight=auto needs the class counts and size of the dataset (the stream's cxr-dataset event)");
    cfg.pos_weight.clear();
    for (uint64_t pos : cfg.class_counts)
      cfg.pos_weight.push_back(pos ? static_cast<float>(static_cast<double>(cfg.dataset_size - pos) / pos) : 1.0f);
  }
  if (!cfg.pos_weight.empty()) {
    if (!multilabel) throw InvalidArgument("pos-weight applies to multilabel tasks (BCE-with-logits)");
    if (static_cast<int>(cfg.pos_weight.size()) != nc)
      throw InvalidArgument("pos-weight has " + std::to_string(cfg.pos_weight.size()) + " values for " +
                            std::to_string(nc) + " classes");
    loss.pos_weight = torch::tensor(cfg.pos_weight).to(device);
  }
  if (cfg.fixed_size) allocate_batch();
  if (cfg.resume && fs::exists(file("last.opt.pt"))) restore();
  if (cfg.dist.distributed()) connect();
}

void Trainer::Impl::connect() {
  comm = Communicator::connect(cfg.dist);
  // Every rank resumes from the same epoch, or none does: the ranks must share output-dir.
  const auto states = comm->allgather(std::to_string(done));
  for (size_t r = 0; r < states.size(); ++r)
    if (states[r] != states[0])
      throw InvalidArgument("rank " + std::to_string(r) + " finds " + states[r] + " complete epochs in " + cfg.output_dir +
                            " but rank 0 finds " + states[0] + ": every rank must see rank 0's run directory to resume");
  // Rank 0's weights and buffers everywhere, as DistributedDataParallel's constructor does.
  std::vector<torch::Tensor> state;
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) state.push_back(p.data());
    for (auto& b : model->buffers()) state.push_back(b);
    comm->broadcast(state, 0);
  }
  if (cfg.sync_batchnorm) sync_batchnorms(*model, comm.get());
}

void Trainer::Impl::average_gradients() {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<torch::Tensor> grads;
  for (auto& p : model->parameters()) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  comm->allreduce_sum(grads);
  const double w = static_cast<double>(comm->world_size());
  for (auto& g : grads) g.div_(w);
  profile.allreduce += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A step with no scans of this rank's own, for a rank whose share ran short (scans that failed
// to decode): it joins the other ranks' collectives with a zero contribution and takes the same
// averaged optimizer step, so the weights stay equal. With SyncBatchNorm the forward and backward
// hold collectives too: an empty batch goes through them (its statistics count zero scans);
// without it no forward runs (BatchNorm would fold the empty batch's NaN statistics into its
// running buffers).
void Trainer::Impl::empty_step() {
  model->train();
  optimizer->zero_grad();
  if (cfg.sync_batchnorm) {
    const int64_t h = size_known ? cfg.input.height : 32, w = size_known ? cfg.input.width : 32;
    torch::Tensor inputs = torch::zeros({0, cfg.input.channels, h, w}).to(device);
    (model->forward(inputs).sum() * 0).backward();
  } else {
    std::vector<torch::Tensor> buffers = model->buffers();
    comm->broadcast(buffers, 0);
  }
  average_gradients();
  optimizer->step();
  ++steps;
}

// How many ranks take a step of their own now (torch.distributed.algorithms.Join's protocol):
// every step of a train phase starts with this vote, so that a rank whose share has run out can
// join the others' steps with empty ones.
int Trainer::Impl::vote(int stepping) {
  std::vector<torch::Tensor> v{torch::full({1}, static_cast<int64_t>(stepping), torch::kLong)};
  comm->allreduce_sum(v);
  return static_cast<int>(v[0].item<int64_t>());
}

// Every rank ends a train phase after the same number of steps: until no rank has a step of its
// own left, this one takes empty ones.
void Trainer::Impl::align_steps() {
  while (vote(0) > 0) empty_step();
}

// The phase's scans of every rank, merged on every rank in the order one process would see
// them: the source gives rank r the scans r, r+W, r+2W, ... of a phase.
void Trainer::Impl::gather_phase() {
  const auto parts = comm->allgather(pack(acc));
  std::vector<PhaseAccumulator> shares;
  size_t most = 0;
  for (const auto& p : parts) {
    shares.push_back(unpack(p));
    most = std::max(most, static_cast<size_t>(shares.back().n));
  }
  PhaseAccumulator all;
  const size_t truth_width = multilabel ? static_cast<size_t>(nc) : 1;
  for (size_t k = 0; k < most; ++k) {
    for (auto& a : shares) {
      if (k >= static_cast<size_t>(a.n)) continue;
      all.n++;
      all.probs.insert(all.probs.end(), a.probs.begin() + static_cast<ptrdiff_t>(k * nc),
                       a.probs.begin() + static_cast<ptrdiff_t>((k + 1) * nc));
      if (multilabel)
        all.truth_multi.insert(all.truth_multi.end(), a.truth_multi.begin() + static_cast<ptrdiff_t>(k * truth_width),
                               a.truth_multi.begin() + static_cast<ptrdiff_t>((k + 1) * truth_width));
      else
        all.truth.push_back(a.truth[k]);
      if (k < a.paths.size()) all.paths.push_back(a.paths[k]);
      if (k < a.indices.size()) all.indices.push_back(a.indices[k]);
    }
  }
  for (const auto& a : shares) all.loss_sum += a.loss_sum;
  acc = std::move(all);
}

void Trainer::Impl::restore() {
  const std::string path = file("last.opt.pt");
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
    model->load(ar);
    optimizer->load(ar);
  } catch (const c10::Error& e) {
    throw IoError("cannot resume from " + path + " (another model or settings?): " + e.what_without_backtrace());
  }
  auto scalar = [&](const char* key) {
    torch::Tensor t;
    ar.read(key, t);
    return t;
  };
  done = static_cast<int>(scalar("epochs_done").item<int64_t>());
  best_epoch = static_cast<int>(scalar("best_epoch").item<int64_t>());
  best_val_loss = scalar("best_val_loss").item<double>();
  train_seconds = scalar("train_seconds").item<double>();
  torch::Tensor size = scalar("input_size");
  if (!cfg.fixed_size) {
    cfg.input.height = static_cast<int>(size[0].item<int64_t>());
    cfg.input.width = static_cast<int>(size[1].item<int64_t>());
    if (cfg.input.height > 0) allocate_batch();
  }
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(scalar("rng"));
  }
  if (best_epoch >= 0 && fs::exists(file("best.pt"))) best_state = models::read_state_dict(file("best.pt"));
  // Metrics rows of the epochs kept; rows of an epoch that did not complete are dropped.
  if (fs::exists(file("metrics.jsonl"))) {
    const std::string path = file("metrics.jsonl");
    std::istringstream in(read_file(path));
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const double epoch = util::json_number_or(util::parse_json(line, path + ":" + std::to_string(n)), "epoch", kNaN);
      if (epoch < done) metric_lines.push_back(line);  // NaN (no epoch) is not
    }
  }
}

metrics::Report Trainer::Impl::report() const {
  metrics::Report r = multilabel ? metrics::multilabel_report(acc.truth_multi, acc.probs, nc, {cfg.threshold})
                                 : metrics::multiclass_report(acc.truth, acc.probs, nc);
  r.loss = acc.n ? acc.loss_sum / static_cast<double>(acc.n) : kNaN;
  return r;
}

void Trainer::Impl::run_batch() {
  if (filled == 0) return;
  torch::Tensor inputs = batch.narrow(0, 0, filled).to(device);
  torch::Tensor targets =
      multilabel ? torch::tensor(batch_multi).view({filled, nc}).to(device) : torch::tensor(batch_labels).to(device);
  torch::Tensor logits;
  double l = 0;
  if (phase == Phase::Train) {
    if (comm) vote(1);  // a step of this rank's own (align_steps)
    // DistributedDataParallel's broadcast_buffers: BatchNorm's running statistics follow rank 0
    // (with SyncBatchNorm they are equal on every rank already).
    if (comm && !cfg.sync_batchnorm) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<torch::Tensor> buffers = model->buffers();
      comm->broadcast(buffers, 0);
      profile.allreduce += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::function<void()> before_step;
    if (comm) before_step = [this] { average_gradients(); };
    StepResult r = train_step(*model, *optimizer, inputs, targets, loss, before_step);
    profile.forward += r.forward_seconds;
    profile.backward += r.backward_seconds;
    profile.optimizer += r.optimizer_seconds;
    logits = r.logits;
    l = r.loss;
    ++steps;
  } else {
    EvalResult r = evaluate(*model, inputs, targets, loss);
    logits = r.logits;
    l = *r.loss;
  }
  torch::Tensor probs = probabilities(logits, multilabel).to(torch::kCPU).contiguous();
  acc.loss_sum += l * static_cast<double>(filled);
  acc.n += filled;
  acc.probs.insert(acc.probs.end(), probs.data_ptr<float>(), probs.data_ptr<float>() + probs.numel());
  if (multilabel)
    for (float v : batch_multi) acc.truth_multi.push_back(v > 0.5f ? 1 : 0);
  else
    for (int64_t v : batch_labels) acc.truth.push_back(static_cast<int>(v));
  if (phase == Phase::Test) {
    acc.paths.insert(acc.paths.end(), batch_paths.begin(), batch_paths.end());
    acc.indices.insert(acc.indices.end(), batch_indices.begin(), batch_indices.end());
  }
  filled = 0;
  batch_labels.clear();
  batch_multi.clear();
  batch_paths.clear();
  batch_indices.clear();
  if (phase == Phase::Train && owner->on_step) owner->on_step(StepProgress{epoch, steps, l});
}

void Trainer::Impl::begin(Phase p, int e) {
  // The learning rate first: a schedule that cannot give one must leave no half-begun epoch
  // behind (finish() would close it as a bogus row).
  const double next_lr = p == Phase::Train ? learning_rate(cfg.schedule, e) : lr;
  close_phase();
  // An epoch without a val phase closes when anything but its val phase begins.
  if (pending && !(p == Phase::Val && e == pending_epoch)) close_epoch(false, metrics::Report());
  phase = p;
  epoch = e;
  acc.clear();
  if (p == Phase::Train) {
    steps = 0;
    lr = next_lr;
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
    epoch_start = std::chrono::steady_clock::now();
    profile = EpochProfile();
  } else if (p == Phase::Test) {
    // Test metrics come from the best weights (the last epoch's when there was no val split).
    if (best_state.size() > 0) models::load_state_dict(*model, best_state, {}, "best weights");
  }
}

void Trainer::Impl::close_phase() {
  if (phase == Phase::None) return;
  run_batch();
  if (comm) {
    if (phase == Phase::Train) align_steps();
    gather_phase();
  }
  if (phase == Phase::Train) {
    pending = true;
    pending_epoch = epoch;
    pending_train = report();
    pending_train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    profile.waiting = std::max(0.0, pending_train_seconds - profile.input - profile.forward - profile.backward -
                                        profile.optimizer - profile.allreduce);
  } else if (phase == Phase::Val) {
    if (pending && pending_epoch == epoch) close_epoch(acc.n > 0, report());
  } else if (phase == Phase::Test) {
    test = report();
    // Test predictions keep the scans' own order.
    std::ostringstream csv;
    csv << "path,index,truth,predicted";
    for (const auto& c : cfg.classes) csv << ",prob_" << csv_field(c);
    csv << "\n";
    for (int64_t i = 0; i < acc.n; ++i) {
      const float* p = acc.probs.data() + i * nc;
      std::string truth, pred;
      if (multilabel) {
        for (int c = 0; c < nc; ++c) {
          if (acc.truth_multi[static_cast<size_t>(i * nc + c)]) truth += (truth.empty() ? "" : "|") + cfg.classes[static_cast<size_t>(c)];
          if (p[c] >= cfg.threshold) pred += (pred.empty() ? "" : "|") + cfg.classes[static_cast<size_t>(c)];
        }
      } else {
        truth = cfg.classes[static_cast<size_t>(acc.truth[static_cast<size_t>(i)])];
        pred = cfg.classes[static_cast<size_t>(std::max_element(p, p + nc) - p)];
      }
      csv << csv_field(acc.paths[static_cast<size_t>(i)]) << "," << acc.indices[static_cast<size_t>(i)] << ","
          << csv_field(truth) << "," << csv_field(pred);
      for (int c = 0; c < nc; ++c) csv << "," << json_number(p[c]);
      csv << "\n";
    }
    if (primary()) write_file_atomic(file("test_predictions.csv"), csv.str());
  }
  phase = Phase::None;
}

void Trainer::Impl::write_state(const models::StateDict& dict, const char* name) {
  if (!primary()) return;
  const std::string path = file(name);
  const std::string tmp = path + ".part";
  models::write_state_dict(dict, tmp);
  commit_file(tmp, path);
}

void Trainer::Impl::write_card() {
  if (!primary()) return;
  models::ModelCard card;
  card.name = cfg.name;
  card.architecture = cfg.architecture;
  card.task = cfg.task;
  card.classes = cfg.classes;
  card.weights = fs::absolute(file("best.pt")).string();
  if (multilabel) card.thresholds.assign(static_cast<size_t>(nc), cfg.threshold);
  card.input = cfg.input;
  card.gradcam_layer = model->features_layer();
  const std::string path = file("model.toml");
  const std::string tmp = file("model.toml.part");
  models::save_card(card, tmp);
  commit_file(tmp, path);
}

void Trainer::Impl::write_resume_archive() {
  if (!primary()) return;
  torch::serialize::OutputArchive ar;
  model->save(ar);
  optimizer->save(ar);
  ar.write("epochs_done", torch::tensor(static_cast<int64_t>(done)));
  ar.write("best_epoch", torch::tensor(static_cast<int64_t>(best_epoch)));
  ar.write("best_val_loss", torch::tensor(best_val_loss, torch::kFloat64));
  ar.write("train_seconds", torch::tensor(train_seconds, torch::kFloat64));
  ar.write("input_size", torch::tensor({static_cast<int64_t>(cfg.input.height), static_cast<int64_t>(cfg.input.width)}));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    ar.write("rng", gen.get_state());
  }
  const std::string path = file("last.opt.pt");
  const std::string tmp = path + ".part";
  ar.save_to(tmp);
  commit_file(tmp, path);
}

void Trainer::Impl::close_epoch(bool has_val, const metrics::Report& val) {
  if (!pending) return;
  pending = false;
  EpochRow row;
  row.epoch = pending_epoch;
  row.train = pending_train;
  row.has_val = has_val;
  row.val = val;
  row.lr = lr;
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
  row.train_seconds = pending_train_seconds;
  row.profile = profile;
  train_seconds += row.seconds;
  // Without a val split the last epoch is the one kept.
  row.best = has_val ? val.loss < best_val_loss : true;
  // Files in an order that keeps every prefix consistent: weights, then the metrics row, and
  // last the resume archive that declares the epoch complete.
  if (row.best) {
    if (has_val) best_val_loss = val.loss;
    best_epoch = row.epoch;
    best_state = models::StateDict();
    for (const auto& item : models::state_dict(*model)) best_state.insert(item.key(), item.value().detach().clone());
    write_state(best_state, "best.pt");
    if (!card_written) {
      write_card();
      card_written = true;
    }
  }
  write_state(models::state_dict(*model), "last.pt");
  metric_lines.push_back(row.json());
  std::string text;
  for (const auto& l : metric_lines) text += l + "\n";
  if (primary()) write_file_atomic(file("metrics.jsonl"), text);
  done = row.epoch + 1;
  write_resume_archive();
  if (owner->on_epoch) owner->on_epoch(row);
}

void Trainer::Impl::write_summary() {
  if (!primary()) return;
  JsonObject o;
  o.add("architecture", cfg.architecture).add("task", models::to_string(cfg.task)).add("classes", cfg.classes);
  o.add("epochs_completed", done).add("best_epoch", best_epoch);
  const bool any_val = best_val_loss < std::numeric_limits<double>::infinity();
  if (any_val)
    o.add("best_val_loss", best_val_loss);
  else
    o.add_null("best_val_loss");
  o.add("has_val", any_val);
  o.add("selection", any_val ? "best validation loss" : "no validation split: last epoch kept");
  o.add("train_seconds", train_seconds).add("scan_errors", errors);
  if (test.n > 0)
    o.add_raw("test", report_json(test));
  else
    o.add_null("test");
  o.add("input_size", std::vector<int64_t>{cfg.input.height, cfg.input.width});
  write_file_atomic(file("summary.json"), o.str() + "\n");
}

Trainer::Trainer(TrainConfig config) : impl_(std::make_unique<Impl>()) {
  impl_->owner = this;
  impl_->cfg = std::move(config);
  // A schedule that cannot give the first epoch's rate (cosine without epochs) fails here,
  // before anything is built or written.
  learning_rate(impl_->cfg.schedule, 0);
  impl_->build(*this);
}

Trainer::~Trainer() = default;

const TrainConfig& Trainer::config() const { return impl_->cfg; }
int Trainer::epochs_done() const { return impl_->done; }
std::string Trainer::device() const { return impl_->device.str(); }
int Trainer::rank() const { return impl_->comm ? impl_->comm->rank() : 0; }
int Trainer::best_epoch() const { return impl_->best_epoch; }
const metrics::Report& Trainer::test_report() const { return impl_->test; }

bool Trainer::add(Phase phase, int epoch, const cv::Mat& scan, int label, const std::vector<uint8_t>& labels,
                  const std::string& path, uint64_t index) {
  Impl& s = *impl_;
  if (s.finished || phase == Phase::None) return false;
  if (phase != Phase::Test && epoch < s.done) return false;
  if (s.multilabel) {
    if (labels.size() != static_cast<size_t>(s.nc)) {
      if (labels.empty()) return false;
      throw InvalidArgument(path + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(s.nc) + " classes");
    }
  } else {
    if (label < 0) return false;
    if (label >= s.nc)
      throw InvalidArgument(path + ": label " + std::to_string(label) + " outside the " + std::to_string(s.nc) + " classes");
  }
  if (scan.empty() || scan.channels() != 1 || (scan.depth() != CV_8U && scan.depth() != CV_16U))
    throw InvalidArgument(path + ": expected an 8- or 16-bit grey scan");
  if (!s.size_known) {
    s.cfg.input.height = scan.rows;
    s.cfg.input.width = scan.cols;
    s.allocate_batch();
  } else if (!s.cfg.fixed_size && (scan.rows != s.cfg.input.height || scan.cols != s.cfg.input.width)) {
    throw InvalidArgument(path + ": scan of " + std::to_string(scan.cols) + "x" + std::to_string(scan.rows) +
                          " but the input size is " + std::to_string(s.cfg.input.width) + "x" +
                          std::to_string(s.cfg.input.height) + " (resize upstream, or set input-size)");
  }
  if (phase != s.phase || epoch != s.epoch) s.begin(phase, epoch);
  const auto t0 = std::chrono::steady_clock::now();
  float* slot = s.batch.data_ptr<float>() + s.filled * s.slot_floats();
  models::prepare_input_into(scan, s.cfg.input, slot);
  if (phase == Phase::Train) s.profile.input += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (s.multilabel)
    for (uint8_t v : labels) s.batch_multi.push_back(v ? 1.0f : 0.0f);
  else
    s.batch_labels.push_back(label);
  s.batch_paths.push_back(path);
  s.batch_indices.push_back(index);
  if (++s.filled == s.cfg.batch_size) s.run_batch();
  return true;
}

void Trainer::begin_phase(Phase phase, int epoch) {
  Impl& s = *impl_;
  if (!s.comm || s.finished || phase == Phase::None) return;
  if (phase != Phase::Test && epoch < s.done) return;
  if (phase != s.phase || epoch != s.epoch) s.begin(phase, epoch);
}

void Trainer::end_phase(Phase phase, int epoch) {
  Impl& s = *impl_;
  if (s.finished) return;
  if (phase == s.phase && epoch == s.epoch) s.close_phase();
}

void Trainer::scan_error() { impl_->errors++; }

void Trainer::finish() {
  Impl& s = *impl_;
  if (s.finished) return;
  s.close_phase();
  if (s.pending) s.close_epoch(false, metrics::Report());
  if (s.comm) {
    uint64_t errors = 0;
    for (const auto& e : s.comm->allgather(std::to_string(s.errors))) errors += std::stoull(e);
    s.errors = errors;
  }
  s.write_summary();
  s.finished = true;
  if (s.comm) s.comm->barrier();  // rank 0's store stays up until every rank is done with it
}

}  // namespace cxr::train
