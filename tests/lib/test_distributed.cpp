// SPDX-License-Identifier: LGPL-2.1-or-later
// Data-parallel training's pieces: the scan source's shards (PyTorch's DistributedSampler: train
// phases padded, every rank the same steps, step k of W ranks at batch b = step k of one process
// at batch W*b), torchrun's environment, the c10d collectives between two ranks (threads of this
// process, each with its own TCPStore client and Gloo process group, as c10d's own tests run
// them), and SyncBatchNorm against one BatchNorm over the whole batch: outputs, running
// statistics and gradients.
// LibTorch first: glog's CHECK must not replace Catch's.
#include <torch/torch.h>

#include "cxr_catch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

#include "cxr/data/sampling.hpp"
#include "cxr/error.hpp"
#include "cxr/models/batchnorm.hpp"
#include "cxr/models/classifier.hpp"
#include "cxr/train/distributed.hpp"
#include "cxr/train/rendezvous.hpp"
#include "cxr/train/sync_batchnorm.hpp"

using namespace cxr;

namespace {

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

/// Runs fn(rank, communicator) on `world` threads that form one process group.
void on_ranks(int world, const std::function<void(int, train::Communicator&)>& fn) {
  const int port = free_port();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        train::DistOptions o;
        o.rank = r;
        o.world_size = world;
        o.master_port = port;
        o.timeout_seconds = 30;
        auto comm = train::Communicator::connect(o);
        fn(r, *comm);
        comm->barrier();
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r << ": " << errors[static_cast<size_t>(r)]);
    CHECK(errors[static_cast<size_t>(r)].empty());
  }
}

struct EnvGuard {
  std::vector<std::string> names{"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "CXR_DIST_TIMEOUT"};
  EnvGuard() { clear(); }
  ~EnvGuard() { clear(); }
  void clear() {
    for (const auto& n : names) unsetenv(n.c_str());
  }
};

}  // namespace

TEST_CASE("distributed: shards follow DistributedSampler; W ranks x batch b step through one process's batches of W*b") {
  std::vector<data::Phase> phases;
  std::vector<size_t> train(11);
  std::iota(train.begin(), train.end(), 100);
  phases.push_back({0, data::Split::Train, train});
  phases.push_back({0, data::Split::Val, {7, 8, 9}});
  phases.push_back({0, data::Split::Test, {1}});

  const auto r0 = data::shard_phases(phases, 0, 2);
  const auto r1 = data::shard_phases(phases, 1, 2);
  REQUIRE(r0.size() == 3);
  REQUIRE(r1.size() == 3);  // rank 1's test share is empty, but the phase stays
  // Train: padded to 12 by repeating the first scan; every rank 6 scans.
  CHECK(r0[0].order == std::vector<size_t>{100, 102, 104, 106, 108, 110});
  CHECK(r1[0].order == std::vector<size_t>{101, 103, 105, 107, 109, 100});
  // Val and test: not padded (their predictions are gathered; a repeat would count twice).
  CHECK(r0[1].order == std::vector<size_t>{7, 9});
  CHECK(r1[1].order == std::vector<size_t>{8});
  CHECK(r0[2].order == std::vector<size_t>{1});
  CHECK(r1[2].order.empty());

  // Step k of 2 ranks at batch 3 covers exactly one process's step k at batch 6.
  const size_t b = 3;
  for (size_t k = 0; k < 2; ++k) {
    std::multiset<size_t> ranks, one;
    for (size_t i = k * b; i < (k + 1) * b; ++i) ranks.insert({r0[0].order[i], r1[0].order[i]});
    std::vector<size_t> padded = train;
    padded.push_back(train[0]);
    for (size_t i = k * 2 * b; i < (k + 1) * 2 * b; ++i) one.insert(padded[i]);
    CHECK(ranks == one);
  }
  CHECK(data::shard_phases(phases, 0, 1)[0].order == train);  // one process: unchanged
  CHECK_THROWS_AS(data::shard_phases(phases, 2, 2), InvalidArgument);
}

TEST_CASE("distributed: torchrun's environment, with errors naming the variable") {
  EnvGuard env;
  train::DistOptions d = train::dist_options_from_env();
  CHECK(d.rank == 0);
  CHECK(d.world_size == 1);
  CHECK_FALSE(d.distributed());
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "4", 1);
  setenv("LOCAL_RANK", "1", 1);
  setenv("MASTER_ADDR", "10.0.0.7", 1);
  setenv("MASTER_PORT", "29511", 1);
  setenv("CXR_DIST_TIMEOUT", "12.5", 1);
  d = train::dist_options_from_env();
  CHECK(d.rank == 1);
  CHECK(d.world_size == 4);
  CHECK(d.local_rank == 1);
  CHECK(d.master_addr == "10.0.0.7");
  CHECK(d.master_port == 29511);
  CHECK(d.timeout_seconds == 12.5);
  setenv("RANK", "4", 1);
  CHECK_THROWS_WITH(train::dist_options_from_env(), Catch::Contains("rank 4 is outside a world of 4"));
  setenv("RANK", "one", 1);
  CHECK_THROWS_WITH(train::dist_options_from_env(), Catch::Contains("RANK='one'"));
  setenv("RANK", "0", 1);
  setenv("MASTER_PORT", "70000", 1);
  CHECK_THROWS_WITH(train::dist_options_from_env(), Catch::Contains("70000"));
}

TEST_CASE("distributed: a rank that cannot reach the store fails with the address it tried") {
  train::DistOptions o;
  o.rank = 1;
  o.world_size = 2;
  o.master_port = free_port();  // nobody listens there
  o.timeout_seconds = 2;
  CHECK_THROWS_WITH(train::Communicator::connect(o),
                    Catch::Contains("cannot reach the rendezvous store at 127.0.0.1:" + std::to_string(o.master_port)));
}

TEST_CASE("distributed: broadcast, allreduce and allgather between two ranks") {
  on_ranks(2, [](int rank, train::Communicator& comm) {
    CHECK(comm.rank() == rank);
    CHECK(comm.world_size() == 2);
    // Broadcast: rank 0's values everywhere, across a float and an int64 tensor.
    std::vector<torch::Tensor> b{torch::full({3, 2}, rank == 0 ? 1.5f : -1.0f), torch::full({4}, rank == 0 ? 7 : 0, torch::kLong)};
    comm.broadcast(b, 0);
    CHECK(torch::equal(b[0], torch::full({3, 2}, 1.5f)));
    CHECK(torch::equal(b[1], torch::full({4}, 7, torch::kLong)));
    // Allreduce: sums, shapes kept.
    std::vector<torch::Tensor> s{torch::arange(6, torch::kFloat).view({2, 3}) * (rank + 1), torch::ones({5})};
    comm.allreduce_sum(s);
    CHECK(torch::equal(s[0], torch::arange(6, torch::kFloat).view({2, 3}) * 3));
    CHECK(torch::equal(s[1], torch::full({5}, 2.0f)));
    // Allgather: every rank's bytes, sizes differing, in rank order.
    const auto all = comm.allgather(rank == 0 ? std::string("a") : std::string("rank one\0x", 10));
    REQUIRE(all.size() == 2);
    CHECK(all[0] == "a");
    CHECK(all[1] == std::string("rank one\0x", 10));
  });
}

TEST_CASE("distributed: SyncBatchNorm over two ranks equals BatchNorm over the whole batch") {
  torch::manual_seed(3);
  const auto x = torch::randn({8, 5, 6, 7}) * 3 + 1;
  const auto probe = torch::randn({8, 5, 6, 7});  // loss = mean over the batch of <y, probe>
  auto make_bn = [] {
    models::BatchNorm2d bn(torch::nn::BatchNormOptions(5).momentum(0.1));
    torch::NoGradGuard g;
    bn->weight.copy_(torch::linspace(0.5, 1.5, 5));
    bn->bias.copy_(torch::linspace(-1, 1, 5));
    return bn;
  };

  // One process, the whole batch.
  auto ref = make_bn();
  ref->train();
  auto xr = x.clone().requires_grad_(true);
  auto yr = ref->forward(xr);
  ((yr * probe).sum() / 8).backward();

  // Two ranks, four scans each: gradients averaged as data-parallel training averages them.
  std::vector<torch::Tensor> y(2), gx(2), gw(2), gb(2), rm(2), rv(2);
  on_ranks(2, [&](int rank, train::Communicator& comm) {
    auto bn = make_bn();
    bn->train();
    train::sync_batchnorms(*bn, &comm);
    auto xs = x.narrow(0, rank * 4, 4).clone().requires_grad_(true);
    auto ys = bn->forward(xs);
    ((ys * probe.narrow(0, rank * 4, 4)).sum() / 4).backward();
    std::vector<torch::Tensor> grads{bn->weight.grad().clone(), bn->bias.grad().clone()};
    comm.allreduce_sum(grads);
    const size_t r = static_cast<size_t>(rank);
    y[r] = ys.detach();
    gx[r] = xs.grad() / 2;  // each rank's loss is the mean of its half
    gw[r] = grads[0] / 2;
    gb[r] = grads[1] / 2;
    rm[r] = bn->running_mean.clone();
    rv[r] = bn->running_var.clone();
  });
  REQUIRE(y[0].defined());
  REQUIRE(y[1].defined());
  CHECK(torch::allclose(torch::cat({y[0], y[1]}), yr.detach(), 1e-5, 1e-5));
  CHECK(torch::allclose(torch::cat({gx[0], gx[1]}), xr.grad(), 1e-5, 1e-6));
  for (int r = 0; r < 2; ++r) {
    CHECK(torch::allclose(gw[r], ref->weight.grad(), 1e-5, 1e-6));
    CHECK(torch::allclose(gb[r], ref->bias.grad(), 1e-5, 1e-6));
    CHECK(torch::allclose(rm[r], ref->running_mean, 1e-5, 1e-6));
    CHECK(torch::allclose(rv[r], ref->running_var, 1e-5, 1e-6));
  }
  CHECK(ref->num_batches_tracked.item<int64_t>() == 1);
}

// In double precision, so that what is compared is the arithmetic of SyncBatchNorm and gradient
// averaging rather than float32 rounding (which sums in another order on each side, and which
// BatchNorm biases whose true gradient is near zero turn into large relative differences).
TEST_CASE("distributed: one step of a whole network on two ranks equals one process on the whole batch") {
  auto arch = GENERATE(as<std::string>{}, "resnet34", "mobilenet_v3_large");
  torch::manual_seed(5);
  const auto x = torch::randn({8, 3, 48, 48}, torch::kDouble);
  const auto y = torch::tensor({0, 1, 2, 0, 1, 2, 1, 0}, torch::kLong);
  auto make = [&] {
    torch::manual_seed(11);
    auto m = models::make_classifier(arch, 3);
    m->to(torch::kDouble);
    m->train();
    return m;
  };
  // Dropout (MobileNetV3's head) draws per scan: off here, so that both sides compute the same function.
  auto no_dropout = [](models::ClassifierImpl& m) {
    for (const auto& sub : m.modules(false))
      if (auto* d = sub->as<torch::nn::DropoutImpl>()) d->options.p(0.0);
  };
  auto ref = make();
  no_dropout(*ref);
  torch::nn::functional::cross_entropy(ref->forward(x), y).backward();
  std::vector<torch::Tensor> want;
  for (auto& p : ref->parameters()) want.push_back(p.grad().clone());

  // Both ranks' models made here: the default generator is shared by the threads.
  std::vector<std::shared_ptr<models::ClassifierImpl>> nets{make(), make()};
  std::vector<std::vector<torch::Tensor>> got(2);
  on_ranks(2, [&](int rank, train::Communicator& comm) {
    auto& m = nets[static_cast<size_t>(rank)];
    no_dropout(*m);
    train::sync_batchnorms(*m, &comm);
    torch::nn::functional::cross_entropy(m->forward(x.narrow(0, rank * 4, 4)), y.narrow(0, rank * 4, 4)).backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : m->parameters()) grads.push_back(p.grad().clone());
    comm.allreduce_sum(grads);
    for (auto& g : grads) g.div_(2);
    got[static_cast<size_t>(rank)] = grads;
  });
  REQUIRE(got[0].size() == want.size());
  const auto names = ref->named_parameters().keys();
  double largest = 0;
  for (const auto& g : want) largest = std::max(largest, g.abs().max().item<double>());
  for (size_t i = 0; i < want.size(); ++i) {
    // Relative to the tensor's own gradient, or to a millionth of the largest one for a tensor
    // whose true gradient is zero (a BatchNorm bias whose shift the next BatchNorm removes, where
    // double rounding leaves ~1e-16 of the largest gradient).
    const double scale = std::max(want[i].abs().max().item<double>(), 1e-6 * largest);
    for (int r = 0; r < 2; ++r) {
      const double diff = (got[static_cast<size_t>(r)][i] - want[i]).abs().max().item<double>() / scale;
      INFO(arch << " rank " << r << " " << names[i] << ": relative difference " << diff);
      CHECK(diff < 1e-9);
    }
  }
}
