// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/train/distributed.hpp"

#include "cxr_config.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstring>
#include <thread>

#if CXR_HAVE_DISTRIBUTED
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

namespace cxr::train {

#if CXR_HAVE_DISTRIBUTED
namespace {

using clock = std::chrono::system_clock;
constexpr double kHeartbeatSeconds = 1.0;
constexpr double kStaleSeconds = 4.0;       // a heartbeat older than this: the rank stopped
constexpr int64_t kBucketBytes = 25 << 20;  // DistributedDataParallel's default bucket_cap_mb

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now().time_since_epoch()).count();
}

std::chrono::milliseconds timeout_of(const DistOptions& o) {
  return std::chrono::milliseconds(static_cast<int64_t>(o.timeout_seconds * 1000));
}

// A client connection to rank 0's store (the heartbeat and the fault probe use their own).
c10::intrusive_ptr<c10d::TCPStore> store_client(const DistOptions& o, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(o.master_port);
  so.isServer = false;
  so.waitWorkers = false;
  so.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
}

std::string heartbeat_key(int rank) { return "cxr/heartbeat/" + std::to_string(rank); }

bool loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

std::string message_of(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

// The one place that knows the process-group classes: LibTorch 1.13's ProcessGroupGloo derives
// from ProcessGroup (its Work is ProcessGroup::Work), 2.x's from Backend (Work is c10d::Work);
// the constructor, Options and the collectives used here have the same shape in both.
using Group = c10d::ProcessGroupGloo;

c10::intrusive_ptr<Group> make_group(const c10::intrusive_ptr<c10d::Store>& store, const DistOptions& o) {
  auto opts = Group::Options::create(timeout_of(o));
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    opts->devices.push_back(Group::createDeviceForInterface(ifname));
  else if (loopback(o.master_addr))
    opts->devices.push_back(Group::createDeviceForHostname("127.0.0.1"));
  else
    opts->devices.push_back(Group::createDefaultDevice());
  opts->threads = 2;
  return c10::make_intrusive<Group>(store, o.rank, o.world_size, opts);
}

#ifdef USE_C10D_NCCL
// With a CUDA LibTorch built with NCCL, collectives on CUDA tensors (gradient buckets, the
// SyncBatchNorm statistics) go through NCCL; Gloo keeps the CPU ones (votes, gathered
// predictions, byte exchanges). Same constructor shape in 1.13 and 2.x.
using CudaGroup = c10d::ProcessGroupNCCL;

c10::intrusive_ptr<CudaGroup> make_cuda_group(const c10::intrusive_ptr<c10d::Store>& store, const DistOptions& o) {
  auto opts = CudaGroup::Options::create();
  opts->timeout = timeout_of(o);
  return c10::make_intrusive<CudaGroup>(store, o.rank, o.world_size, opts);
}
#endif

class GlooCommunicator final : public Communicator {
 public:
  explicit GlooCommunicator(const DistOptions& o) : o_(o) {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<size_t>(o.world_size);
    so.waitWorkers = true;
    so.timeout = timeout_of(o);
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    } catch (const std::exception& e) {
      throw DistributedError(std::string(o.rank == 0 ? "cannot host" : "cannot reach") + " the rendezvous store at " +
                             where() + " within " + std::to_string(static_cast<int>(o.timeout_seconds)) +
                             " s (MASTER_ADDR/MASTER_PORT; rank " + std::to_string(o.rank) + " of " +
                             std::to_string(o.world_size) + "): " + message_of(e));
    }
    beat();
    try {
      group_ = make_group(c10::make_intrusive<c10d::PrefixStore>("cxr/pg", store_), o);
    } catch (const std::exception& e) {
      throw DistributedError("rank " + std::to_string(o.rank) + " could not form the process group through " +
                             where() + ": " + message_of(e) + blame());
    }
    heartbeat_ = std::thread([this] { heartbeat_loop(); });
  }

  ~GlooCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    if (heartbeat_.joinable()) heartbeat_.join();
  }

  int rank() const override { return o_.rank; }
  int world_size() const override { return o_.world_size; }

  void broadcast(std::vector<torch::Tensor>& tensors, int root) override {
    for_buckets(tensors, [&](torch::Tensor& flat) {
      std::vector<torch::Tensor> one{flat};
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      run("broadcast", [&] { on_group(flat, [&](auto& g) { g.broadcast(one, opts)->wait(); }); });
    });
  }

  void allreduce_sum(std::vector<torch::Tensor>& tensors) override {
    for_buckets(tensors, [&](torch::Tensor& flat) {
      std::vector<torch::Tensor> one{flat};
      run("allreduce", [&] { on_group(flat, [&](auto& g) { g.allreduce(one)->wait(); }); });
    });
  }

  std::vector<std::string> allgather(const std::string& bytes) override {
    const int w = o_.world_size;
    std::vector<torch::Tensor> in{torch::tensor({static_cast<int64_t>(bytes.size())}, torch::kInt64)};
    std::vector<std::vector<torch::Tensor>> out(1);
    for (int r = 0; r < w; ++r) out[0].push_back(torch::empty({1}, torch::kInt64));
    run("allgather", [&] { group_->allgather(out, in)->wait(); });
    int64_t most = 1;
    std::vector<int64_t> sizes;
    for (auto& t : out[0]) {
      sizes.push_back(t.item<int64_t>());
      most = std::max(most, sizes.back());
    }
    torch::Tensor mine = torch::zeros({most}, torch::kUInt8);
    if (!bytes.empty()) std::memcpy(mine.data_ptr<uint8_t>(), bytes.data(), bytes.size());
    std::vector<torch::Tensor> in2{mine};
    std::vector<std::vector<torch::Tensor>> out2(1);
    for (int r = 0; r < w; ++r) out2[0].push_back(torch::empty({most}, torch::kUInt8));
    run("allgather", [&] { group_->allgather(out2, in2)->wait(); });
    std::vector<std::string> result;
    for (int r = 0; r < w; ++r)
      result.emplace_back(reinterpret_cast<const char*>(out2[0][static_cast<size_t>(r)].data_ptr<uint8_t>()),
                          static_cast<size_t>(sizes[static_cast<size_t>(r)]));
    return result;
  }

  void barrier() override {
    run("barrier", [&] { group_->barrier()->wait(); });
  }

 private:
  std::string where() const { return o_.master_addr + ":" + std::to_string(o_.master_port); }

  void beat() {
    const std::string v = std::to_string(now_ms());
    store_->set(heartbeat_key(o_.rank), std::vector<uint8_t>(v.begin(), v.end()));
  }

  // Its own connection to the store: the main one may be blocked in a rendezvous.
  void heartbeat_loop() {
    c10::intrusive_ptr<c10d::TCPStore> client;
    try {
      client = store_client(o_, timeout_of(o_));
    } catch (const std::exception&) {
      return;  // a store that cannot be reached shows up in the next collective
    }
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      lock.unlock();
      try {
        const std::string v = std::to_string(now_ms());
        client->set(heartbeat_key(o_.rank), std::vector<uint8_t>(v.begin(), v.end()));
      } catch (const std::exception&) {
        return;  // rank 0 and its store are gone: the collectives say so
      }
      lock.lock();
      cv_.wait_for(lock, std::chrono::duration<double>(kHeartbeatSeconds), [this] { return stop_; });
    }
  }

  // " (rank 1 stopped: last heartbeat 7.2 s ago)", or the store's absence. A peer that died a
  // moment ago still has a fresh heartbeat: look again until a beat would have been missed.
  std::string blame() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(kStaleSeconds + 1.5);
    while (true) {
      std::string dead;
      try {
        auto probe = store_client(o_, std::chrono::milliseconds(3000));
        for (int r = 0; r < o_.world_size; ++r) {
          if (r == o_.rank) continue;
          const std::string key = heartbeat_key(r);
          if (!probe->check({key})) {
            dead += (dead.empty() ? "" : ", ") + ("rank " + std::to_string(r) + " never joined");
            continue;
          }
          const auto v = probe->get(key);
          const double age = static_cast<double>(now_ms() - std::stoll(std::string(v.begin(), v.end()))) / 1000.0;
          if (age > kStaleSeconds) {
            char buf[96];
            std::snprintf(buf, sizeof buf, "rank %d stopped (last heartbeat %.1f s ago)", r, age);
            dead += (dead.empty() ? "" : ", ") + std::string(buf);
          }
        }
      } catch (const std::exception&) {
        return o_.rank == 0 ? "" : " (rank 0, which hosts the store at " + where() + ", is gone)";
      }
      if (!dead.empty()) return " (" + dead + ")";
      if (std::chrono::steady_clock::now() > deadline) return " (every other rank is still beating: one is stuck)";
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }

  // The group for a tensor's device: NCCL for CUDA tensors where LibTorch has it (made on first
  // use: every rank reaches it at the same collective), Gloo otherwise.
  template <class F>
  void on_group(const torch::Tensor& t, F&& f) {
#ifdef USE_C10D_NCCL
    if (t.is_cuda()) {
      if (!cuda_group_) cuda_group_ = make_cuda_group(c10::make_intrusive<c10d::PrefixStore>("cxr/nccl", store_), o_);
      f(*cuda_group_);
      return;
    }
#else
    (void)t;
#endif
    f(*group_);
  }

  template <class F>
  void run(const char* what, F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      throw DistributedError("rank " + std::to_string(o_.rank) + ": " + what + " failed: " + message_of(e) + blame());
    }
  }

  // Flattens same-dtype tensors into buckets of at most kBucketBytes, runs `op` on each flat
  // bucket and copies the result back.
  template <class Op>
  void for_buckets(std::vector<torch::Tensor>& tensors, Op&& op) {
    size_t i = 0;
    while (i < tensors.size()) {
      const auto dtype = tensors[i].scalar_type();
      const auto device = tensors[i].device();
      size_t j = i;
      int64_t bytes = 0;
      while (j < tensors.size() && tensors[j].scalar_type() == dtype && tensors[j].device() == device &&
             (j == i || bytes + tensors[j].nbytes() <= static_cast<size_t>(kBucketBytes))) {
        bytes += static_cast<int64_t>(tensors[j].nbytes());
        ++j;
      }
      std::vector<torch::Tensor> parts;
      for (size_t k = i; k < j; ++k) parts.push_back(tensors[k].reshape({-1}));
      torch::Tensor flat = torch::cat(parts);
      op(flat);
      int64_t at = 0;
      for (size_t k = i; k < j; ++k) {
        const int64_t n = tensors[k].numel();
        tensors[k].copy_(flat.narrow(0, at, n).view_as(tensors[k]));
        at += n;
      }
      i = j;
    }
  }

  DistOptions o_;
  c10::intrusive_ptr<c10d::TCPStore> store_;
  c10::intrusive_ptr<Group> group_;
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<CudaGroup> cuda_group_;
#endif
  std::thread heartbeat_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace
#endif

std::unique_ptr<Communicator> Communicator::connect(const DistOptions& options) {
  validate(options);
#if CXR_HAVE_DISTRIBUTED
  return std::make_unique<GlooCommunicator>(options);
#else
  throw InvalidArgument("this build of gst-cxr has no distributed training (LibTorch's c10d with Gloo was not found "
                        "at build time; install libgloo-dev and rebuild)");
#endif
}

}  // namespace cxr::train
