// SPDX-License-Identifier: LGPL-2.1-or-later
// BatchRunner: ordering, back-pressure, errors, flushing and the batch timeout, with a stand-in
// network (each "scan" is its id, written into its slot; the result's `top` gives it back).
#include "cxr_catch.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/models/batch_runner.hpp"

using cxr::models::BatchRunner;
using cxr::models::BatchRunnerOptions;
using cxr::models::Prediction;

namespace {

constexpr BatchRunner::Flow kRefused = -7;  // what a refusing consumer returns
constexpr BatchRunner::Flow kFlushing = -2;

BatchRunner::Token frame_token(int id) { return reinterpret_cast<BatchRunner::Token>(static_cast<uintptr_t>(id)); }
BatchRunner::Token marker_token(int id) { return frame_token(100000 + id); }
int id_of(BatchRunner::Token t) { return static_cast<int>(reinterpret_cast<uintptr_t>(t)); }

/// A stand-in network and consumer: records what leaves, in order.
struct Bench {
  explicit Bench(size_t batch, size_t streams, bool overlap = true,
                 std::chrono::nanoseconds timeout = std::chrono::nanoseconds(0)) {
    BatchRunnerOptions o;
    o.batch_size = batch;
    o.streams = streams;
    o.overlap = overlap;
    o.timeout = timeout;
    o.owner = "test";
    slots.assign(streams + 1, std::vector<int>(batch, -1));
    BatchRunner::Hooks h;
    h.run = [this](size_t n, size_t bank) {
      if (before_run) before_run(bank, slots[bank][0]);
      std::vector<Prediction> out(n);
      for (size_t i = 0; i < n; ++i) {
        out[i].top = slots[bank][i];
        if (out[i].top == throw_on) throw std::runtime_error("network failed on " + std::to_string(throw_on));
      }
      runs.fetch_add(1);
      return out;
    };
    h.deliver = [this](BatchRunner::Token t, const Prediction& p) {
      std::lock_guard<std::mutex> lock(mutex);
      if (id_of(t) != p.top) mismatched = true;
      log.push_back(id_of(t));
      return id_of(t) == refuse_at ? kRefused : BatchRunner::kOk;
    };
    h.pass = [this](BatchRunner::Token t) {
      std::lock_guard<std::mutex> lock(mutex);
      log.push_back(id_of(t));
    };
    h.drop = [this](BatchRunner::Token t, bool frame) {
      std::lock_guard<std::mutex> lock(mutex);
      (frame ? dropped : dropped_markers).push_back(id_of(t));
    };
    h.failed = [this](const std::string& what) {
      std::lock_guard<std::mutex> lock(mutex);
      failures.push_back(what);
      return BatchRunner::Flow(-5);
    };
    h.due = [this] {
      std::lock_guard<std::mutex> lock(stream);
      runner->submit_due();
    };
    runner = std::make_unique<BatchRunner>(o, h);
  }

  /// What the element's chain does: take the slot, prepare the scan into it, queue the frame.
  BatchRunner::Flow push(int id) {
    std::lock_guard<std::mutex> lock(stream);
    const auto slot = runner->next_slot();
    if (runner->flow() != BatchRunner::kOk) {
      std::lock_guard<std::mutex> l(mutex);
      refused.push_back(id);
      return runner->flow();
    }
    slots[slot.bank][slot.index] = id;
    return runner->add_frame(frame_token(id));
  }
  bool marker(int id) {
    std::lock_guard<std::mutex> lock(stream);
    return runner->add_marker(marker_token(id));
  }
  /// What the element does with a serialized event: queued behind the frames, or, with nothing
  /// pending, passed on at once.
  void event(int id) {
    if (marker(id)) return;
    std::lock_guard<std::mutex> lock(mutex);
    log.push_back(id_of(marker_token(id)));
  }
  BatchRunner::Flow drain() {
    std::lock_guard<std::mutex> lock(stream);
    return runner->drain();
  }
  std::vector<int> left() {
    std::lock_guard<std::mutex> lock(mutex);
    return log;
  }

  std::mutex stream;  // the pad's stream lock
  std::mutex mutex;
  std::vector<std::vector<int>> slots;
  std::vector<int> log, dropped, dropped_markers, refused;
  std::vector<std::string> failures;
  std::atomic<int> runs{0};
  bool mismatched = false;
  int throw_on = -1;
  int refuse_at = -1;
  std::function<void(size_t bank, int first)> before_run;
  std::unique_ptr<BatchRunner> runner;  // last: its threads end before the rest goes
};

std::vector<int> iota(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("BatchRunner: frames and markers leave in arrival order, whichever stream finishes first", "[batch]") {
  const size_t streams = GENERATE(1, 2, 3);
  const size_t batch = GENERATE(1, 3);
  Bench b(batch, streams);
  // Early batches are the slow ones: later batches finish first and must wait.
  b.before_run = [](size_t, int first) {
    if (first < 6) std::this_thread::sleep_for(std::chrono::milliseconds(15));
  };
  std::vector<int> expected;
  for (int i = 0; i < 20; ++i) {
    REQUIRE(b.push(i) == BatchRunner::kOk);
    expected.push_back(i);
    if (i % 4 == 1) {
      b.event(i);  // keeps its place after frame i
      expected.push_back(100000 + i);
    }
  }
  REQUIRE(b.drain() == BatchRunner::kOk);
  CHECK(b.left() == expected);
  CHECK_FALSE(b.mismatched);  // every frame got the result of its own slot
  CHECK(b.dropped.empty());
  CHECK(b.runs.load() == static_cast<int>((20 + batch - 1) / batch));
}

TEST_CASE("BatchRunner: slots fill one bank, then the next; a marker with nothing pending is not taken", "[batch]") {
  Bench b(3, 2);
  CHECK_FALSE(b.marker(1));  // nothing queued, nothing in flight: the caller passes it on
  std::vector<std::pair<size_t, size_t>> seen;
  for (int i = 0; i < 9; ++i) {
    {
      std::lock_guard<std::mutex> lock(b.stream);
      const auto s = b.runner->next_slot();
      seen.emplace_back(s.index, s.bank);
    }
    b.push(i);
  }
  b.drain();
  CHECK(b.runner->banks() == 3);
  const std::vector<std::pair<size_t, size_t>> expected = {{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1},
                                                           {2, 1}, {0, 2}, {1, 2}, {2, 2}};
  CHECK(seen == expected);
  CHECK(b.left() == iota(0, 9));
}

TEST_CASE("BatchRunner: a bank still read by the network holds the next frame back", "[batch]") {
  Bench b(2, 1);  // one stream: two banks
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  b.before_run = [released](size_t, int first) {
    if (first == 0) released.wait();  // the first batch runs until the test lets it go
  };
  for (int i = 0; i < 4; ++i) REQUIRE(b.push(i) == BatchRunner::kOk);  // batch 0 runs (held), batch 1 waits
  // The third batch would fill bank 0, which batch 0 is still reading.
  auto third = std::async(std::launch::async, [&] { return b.push(4); });
  CHECK(third.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
  CHECK(b.left().empty());
  release.set_value();
  CHECK(third.get() == BatchRunner::kOk);
  b.push(5);
  REQUIRE(b.drain() == BatchRunner::kOk);
  CHECK(b.left() == iota(0, 6));
}

TEST_CASE("BatchRunner: without overlap a full batch returns once it has left", "[batch]") {
  Bench b(2, 2, /*overlap=*/false);
  b.before_run = [](size_t, int) { std::this_thread::sleep_for(std::chrono::milliseconds(5)); };
  b.push(0);
  CHECK(b.left().empty());  // half a batch waits
  b.push(1);
  CHECK(b.left() == iota(0, 2));
  b.push(2);
  b.push(3);
  CHECK(b.left() == iota(0, 4));
}

TEST_CASE("BatchRunner: a failed batch is reported once; later frames are dropped, markers still pass", "[batch]") {
  Bench b(2, 2);
  b.throw_on = 2;  // the second batch (frames 2, 3) fails
  b.before_run = [](size_t, int first) {
    if (first == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  for (int i = 0; i < 4; ++i) b.push(i);
  b.event(50);
  b.drain();
  REQUIRE(b.failures.size() == 1);
  CHECK(b.failures[0] == "network failed on 2");
  CHECK(b.runner->flow() == -5);
  CHECK(b.left() == std::vector<int>{0, 1, 100050});
  CHECK(b.dropped == std::vector<int>{2, 3});
  // The stream is refused from then on.
  CHECK(b.push(6) == -5);
  CHECK(b.refused == std::vector<int>{6});
}

TEST_CASE("BatchRunner: a refused frame stops delivery; the rest are dropped", "[batch]") {
  Bench b(4, 1);
  b.refuse_at = 1;
  for (int i = 0; i < 8; ++i) b.push(i);
  CHECK(b.drain() == kRefused);
  CHECK(b.left() == std::vector<int>{0, 1});
  CHECK(b.dropped == iota(2, 8));
  CHECK(b.failures.empty());
}

TEST_CASE("BatchRunner: a flush drops what has not run and the stream goes on after it", "[batch]") {
  Bench b(2, 2);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  b.before_run = [released](size_t, int first) {
    if (first == 0) released.wait();
  };
  for (int i = 0; i < 5; ++i) b.push(i);  // batch 0 runs (held), batch 1 waits for it, frame 4 queued
  b.marker(60);
  b.runner->stop(kFlushing);  // flush start, from another thread
  release.set_value();
  CHECK(b.push(9) == kFlushing);  // refused while flushing
  {
    std::lock_guard<std::mutex> lock(b.stream);  // flush stop is serialized
    b.runner->flush();
  }
  CHECK(b.runner->flow() == BatchRunner::kOk);
  // Batch 0 was running: its frames are dropped too, since the flush came before they left.
  CHECK(b.dropped == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(b.dropped_markers == std::vector<int>{100060});
  CHECK(b.left().empty());
  for (int i = 10; i < 14; ++i) b.push(i);
  REQUIRE(b.drain() == BatchRunner::kOk);
  CHECK(b.left() == iota(10, 14));
}

TEST_CASE("BatchRunner: a partial batch runs once its timeout expires", "[batch]") {
  Bench b(8, 1, true, std::chrono::milliseconds(20));
  b.push(0);
  b.push(1);
  for (int i = 0; i < 500 && b.left().size() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(b.left() == iota(0, 2));
  CHECK(b.runs.load() == 1);
  // A full batch leaves at once; the timeout is armed again by the next first frame.
  for (int i = 2; i < 10; ++i) b.push(i);
  b.push(10);
  for (int i = 0; i < 500 && b.left().size() < 11; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(b.left() == iota(0, 11));
}

TEST_CASE("BatchRunner: closing accounts for every token exactly once", "[batch]") {
  const size_t streams = GENERATE(1, 3);
  auto b = std::make_unique<Bench>(3, streams);
  b->before_run = [](size_t, int) { std::this_thread::sleep_for(std::chrono::milliseconds(2)); };
  for (int i = 0; i < 10; ++i) {
    b->push(i);
    if (i % 3 == 0) b->event(i);
  }
  b->runner->close(kFlushing);
  std::vector<int> all = b->log;
  all.insert(all.end(), b->dropped.begin(), b->dropped.end());
  all.insert(all.end(), b->dropped_markers.begin(), b->dropped_markers.end());
  std::sort(all.begin(), all.end());
  std::vector<int> expected = iota(0, 10);
  for (int i = 0; i < 10; i += 3) expected.push_back(100000 + i);
  std::sort(expected.begin(), expected.end());
  CHECK(all == expected);
}

TEST_CASE("BatchRunner: refuses options it cannot run", "[batch]") {
  BatchRunnerOptions o;
  CHECK_THROWS_AS(BatchRunner(o, BatchRunner::Hooks{}), cxr::InvalidArgument);  // no hooks
  BatchRunner::Hooks h;
  h.run = [](size_t n, size_t) { return std::vector<Prediction>(n); };
  h.deliver = [](BatchRunner::Token, const Prediction&) { return BatchRunner::kOk; };
  h.pass = [](BatchRunner::Token) {};
  h.drop = [](BatchRunner::Token, bool) {};
  h.failed = [](const std::string&) { return BatchRunner::Flow(-5); };
  CHECK_NOTHROW(BatchRunner(o, h));
  o.batch_size = 0;
  CHECK_THROWS_AS(BatchRunner(o, h), cxr::InvalidArgument);
  o.batch_size = 4;
  o.streams = 0;
  CHECK_THROWS_AS(BatchRunner(o, h), cxr::InvalidArgument);
  o.streams = 1;
  o.timeout = std::chrono::milliseconds(5);  // a timeout needs the `due` hook
  CHECK_THROWS_AS(BatchRunner(o, h), cxr::InvalidArgument);
}
