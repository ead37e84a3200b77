// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Batching for a stream of scans: collects prepared inputs into batches, runs each batch on one
/// of several compute threads, and hands the results back in arrival order.
///
/// The owner (cxrinfer) keeps its frames and events; the runner holds them as opaque tokens and
/// gives each back through a hook: a frame with its Prediction, a marker (a serialized event) in
/// its place between the frames, or, when a token will not be delivered, to be released.
///
/// Scans are prepared into input banks of batch_size slots: one bank per stream plus one to
/// fill, so that with `overlap` the caller's thread prepares the next batch while the others
/// run. A batch is handed over when it is full, when the batch timeout expires (through the
/// `due` hook), on submit() and drain(). The first compute thread that is free takes the oldest
/// batch handed over; a batch that finishes before one handed over earlier waits in an outbox,
/// and the thread that finishes the earlier one delivers both, so no compute thread idles on
/// another's batch.
///
/// Delivery stops at the first flow other than kOk (what a hook returned, or what stop() set):
/// frames after it are dropped, markers still pass. The flow is the owner's own code (a
/// GstFlowReturn in cxrinfer); the runner only tells kOk from the rest.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cxr/models/predictor.hpp"  // Prediction
#include "cxr/runtime/threads.hpp"   // ComputeThread

namespace cxr::models {

struct BatchRunnerOptions {
  size_t batch_size = 1;  ///< frames per batch
  size_t streams = 1;     ///< compute threads running batches side by side
  /// Hand a batch over and return at once (the caller prepares the next one meanwhile); false:
  /// wait until each batch is delivered.
  bool overlap = true;
  /// A partial batch is due once its first frame waited this long (0: wait for a full batch or
  /// for submit()).
  std::chrono::nanoseconds timeout{0};
  /// Compute threads are named runtime::compute_thread_name(owner, i).
  std::string owner = "batch";
};

class BatchRunner {
 public:
  using Token = void*;
  /// The owner's flow code: kOk goes on; anything else is why delivery stopped.
  using Flow = int;
  static constexpr Flow kOk = 0;

  struct Hooks {
    /// Runs the network on slots [0, n) of input bank `bank`; on a compute thread.
    std::function<std::vector<Prediction>(size_t n, size_t bank)> run;
    /// A frame with its result, in arrival order; returns kOk to go on, or why not.
    std::function<Flow(Token frame, const Prediction& result)> deliver;
    /// A marker, after the frames queued before it (also once delivery has stopped).
    std::function<void(Token marker)> pass;
    /// A frame or marker that will not be delivered or passed: release it.
    std::function<void(Token token, bool frame)> drop;
    /// A batch's run threw `what`: report it; returns the flow that stops delivery.
    std::function<Flow(const std::string& what)> failed;
    /// The batch timeout expired: call submit_due() the way the stream calls are serialized
    /// (cxrinfer: under the sink pad's stream lock). From the runner's timer thread.
    std::function<void()> due;
  };

  /// Which slot of which input bank the next frame goes into.
  struct Slot {
    size_t index = 0;
    size_t bank = 0;
  };

  /// Starts the compute threads (and the timer thread when options.timeout > 0). Input banks:
  /// streams + 1 (banks()).
  BatchRunner(BatchRunnerOptions options, Hooks hooks);
  /// close(-1) unless closed before.
  ~BatchRunner();
  BatchRunner(const BatchRunner&) = delete;
  BatchRunner& operator=(const BatchRunner&) = delete;

  /// Input banks the owner's network must have (streams + 1).
  size_t banks() const { return bank_free_.size(); }
  const BatchRunnerOptions& options() const { return options_; }
  /// Compute thread i: LibTorch work that belongs with the batches (loading the network on the
  /// first) runs there.
  runtime::ComputeThread& compute(size_t i = 0) { return *compute_[i]; }

  // ---- Stream calls: one thread at a time (the owner serializes them, cxrinfer with the sink
  // pad's stream lock); also submit_due() from the `due` hook.

  /// The slot for the next frame; waits while a batch handed over earlier still reads its bank.
  Slot next_slot();
  /// Queues a frame prepared into next_slot(). Hands the batch over once it is full (without
  /// overlap, also waits until it is delivered), else arms the timeout on a batch's first frame.
  Flow add_frame(Token frame);
  /// Queues a marker after the frames before it when any are queued or in flight (returns true;
  /// a marker with nothing queued hands the queue over at once); false: nothing is pending, so
  /// the caller passes it on itself.
  bool add_marker(Token marker);
  /// Hands what is queued over to the compute threads and returns at once.
  Flow submit();
  /// submit() if the timeout of the batch being filled has expired.
  void submit_due();
  /// Hands what is queued over and waits until everything handed over is delivered.
  Flow drain();
  /// After stop(): waits for the batches in flight, drops what is queued, flows again.
  void flush();
  /// Frames queued (next_slot().index).
  size_t pending() const { return pending_; }

  // ---- From any thread.

  /// Delivery stops with `why` (kOk: goes on); batches not yet run are dropped.
  void stop(Flow why) { flow_.store(why); }
  /// kOk, or why delivery stopped.
  Flow flow() const { return flow_.load(); }
  /// Stops with `why`, ends the timer, lets the compute threads finish what they hold (frames
  /// dropped, markers passed), joins them and drops what is queued. Idempotent.
  void close(Flow why);

 private:
  struct Item {
    Token token;
    bool frame;
  };
  struct Batch;

  void run_batch(std::shared_ptr<Batch> batch);
  void take_batch();
  void deliver(Batch& batch);
  void drop_queue();
  void disarm();
  void timer_loop();

  BatchRunnerOptions options_;
  Hooks hooks_;
  std::vector<std::unique_ptr<runtime::ComputeThread>> compute_;
  std::atomic<Flow> flow_{kOk};
  bool closed_ = false;

  // Stream state (stream calls).
  std::deque<Item> queue_;  // the batch being filled: frames and markers in arrival order
  size_t pending_ = 0;      // frames in queue_ (= slots of bank_ used)
  size_t bank_ = 0;
  std::vector<std::shared_future<void>> bank_free_;  // ready once the batch reading the bank ran
  uint64_t next_seq_ = 0;
  std::shared_future<void> last_;  // ready when every batch handed over is delivered

  // Batches handed over and not yet taken; the first compute thread free takes the oldest.
  std::mutex ready_mutex_;
  std::deque<std::shared_ptr<Batch>> ready_;

  // Batches that ran before the ones handed over earlier, by number.
  std::mutex outbox_mutex_;
  std::map<uint64_t, std::shared_ptr<Batch>> outbox_;
  uint64_t to_deliver_ = 0;
  bool delivering_ = false;

  // Batch timeout.
  std::mutex timer_mutex_;
  std::condition_variable timer_cond_;
  bool quit_ = false;
  bool armed_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::thread timer_;
};

}  // namespace cxr::models
