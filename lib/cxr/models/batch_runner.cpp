// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/batch_runner.hpp"

#include <utility>

#include "cxr/error.hpp"

namespace cxr::models {

/// Frames and markers of one batch, in arrival order, handed to a compute thread; `frames` of
/// them are scans, prepared in input bank `bank`. Batches are numbered as they are handed over
/// (`seq`) and leave in that order.
struct BatchRunner::Batch {
  std::deque<Item> items;
  size_t frames = 0;
  size_t bank = 0;
  uint64_t seq = 0;
  // Filled by the compute thread.
  Flow at_start = kOk;  // not kOk: not run, its frames are dropped
  std::vector<Prediction> preds;
  std::string failure;
  std::promise<void> read;       // the network has read bank `bank` (or never will)
  std::promise<void> delivered;  // its items have left (or were dropped)
};

namespace {

bool running(const std::shared_future<void>& f) {
  return f.valid() && f.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
}

}  // namespace

BatchRunner::BatchRunner(BatchRunnerOptions options, Hooks hooks)
    : options_(std::move(options)), hooks_(std::move(hooks)) {
  if (options_.batch_size == 0) throw InvalidArgument("batch runner: batch size 0");
  if (options_.streams == 0) throw InvalidArgument("batch runner: no compute stream");
  if (!hooks_.run || !hooks_.deliver || !hooks_.pass || !hooks_.drop || !hooks_.failed) {
    throw InvalidArgument("batch runner: run, deliver, pass, drop and failed are all needed");
  }
  if (options_.timeout.count() > 0 && !hooks_.due) throw InvalidArgument("batch runner: a timeout needs `due`");
  bank_free_.resize(options_.streams + 1);  // one more to fill while each stream runs one
  for (size_t i = 0; i < options_.streams; ++i) {
    compute_.push_back(std::make_unique<runtime::ComputeThread>(runtime::compute_thread_name(options_.owner, i)));
  }
  if (options_.timeout.count() > 0) timer_ = std::thread([this] { timer_loop(); });
}

BatchRunner::~BatchRunner() { close(flow() != kOk ? flow() : -1); }

BatchRunner::Slot BatchRunner::next_slot() {
  if (pending_ == 0 && bank_free_[bank_].valid()) bank_free_[bank_].wait();  // still read by a batch
  return Slot{pending_, bank_};
}

BatchRunner::Flow BatchRunner::add_frame(Token frame) {
  queue_.push_back(Item{frame, true});
  ++pending_;
  if (pending_ >= options_.batch_size) {
    Flow ret = submit();
    if (!options_.overlap) {
      last_.wait();
      ret = flow_.load();
    }
    return ret;
  }
  if (pending_ == 1 && options_.timeout.count() > 0) {
    std::lock_guard<std::mutex> lock(timer_mutex_);
    armed_ = true;
    deadline_ = std::chrono::steady_clock::now() + options_.timeout;
    timer_cond_.notify_all();
  }
  return kOk;
}

bool BatchRunner::add_marker(Token marker) {
  if (queue_.empty() && !running(last_)) return false;
  // Keeps its place after the frames before it: with the batch being filled, or, when that is
  // empty, delivered by a compute thread after the batches it still has.
  queue_.push_back(Item{marker, false});
  if (pending_ == 0) submit();
  return true;
}

BatchRunner::Flow BatchRunner::submit() {
  disarm();
  if (queue_.empty()) return flow_.load();
  auto batch = std::make_shared<Batch>();
  batch->items.swap(queue_);
  batch->frames = pending_;
  batch->bank = bank_;
  batch->seq = next_seq_++;
  pending_ = 0;
  std::shared_future<void> read = batch->read.get_future().share();
  std::shared_future<void> delivered = batch->delivered.get_future().share();
  if (batch->frames > 0) {
    bank_free_[bank_] = read;
    bank_ = (bank_ + 1) % bank_free_.size();
  }
  last_ = delivered;
  {
    std::lock_guard<std::mutex> lock(ready_mutex_);
    ready_.push_back(std::move(batch));
  }
  // Every compute thread is offered the batch; the first one free takes it (take_batch).
  for (auto& compute : compute_) compute->submit([this] { take_batch(); });
  return flow_.load();
}

void BatchRunner::submit_due() {
  bool due;
  {
    std::lock_guard<std::mutex> lock(timer_mutex_);
    due = armed_ && !quit_ && std::chrono::steady_clock::now() >= deadline_;
  }
  if (due) submit();
}

BatchRunner::Flow BatchRunner::drain() {
  submit();
  if (last_.valid()) last_.wait();
  return flow_.load();
}

void BatchRunner::flush() {
  if (last_.valid()) last_.wait();
  drop_queue();
  flow_.store(kOk);
}

void BatchRunner::close(Flow why) {
  if (closed_) return;
  closed_ = true;
  {
    std::lock_guard<std::mutex> lock(timer_mutex_);
    quit_ = true;
    timer_cond_.notify_all();
  }
  if (timer_.joinable()) timer_.join();
  flow_.store(why);
  // Each compute thread runs what it holds, then joins. No batch waits for another: whichever
  // thread finishes the batch in turn also delivers those waiting after it (their frames are
  // dropped, as the flow is no longer kOk).
  compute_.clear();
  drop_queue();
}

/// On a compute thread: runs the oldest batch handed over, if another thread has not taken it.
void BatchRunner::take_batch() {
  std::shared_ptr<Batch> batch;
  {
    std::lock_guard<std::mutex> lock(ready_mutex_);
    if (ready_.empty()) return;
    batch = std::move(ready_.front());
    ready_.pop_front();
  }
  run_batch(std::move(batch));
}

/// On a compute thread: runs a batch, then delivers it when it is its turn, with the batches
/// after it that are waiting; otherwise leaves it to the thread whose batch is in turn.
void BatchRunner::run_batch(std::shared_ptr<Batch> batch) {
  batch->at_start = flow_.load();
  if (batch->frames > 0 && batch->at_start == kOk) {
    try {
      batch->preds = hooks_.run(batch->frames, batch->bank);
      if (batch->preds.size() != batch->frames) {
        batch->failure =
            std::to_string(batch->preds.size()) + " results for " + std::to_string(batch->frames) + " scans";
      }
    } catch (const std::exception& e) {
      batch->failure = e.what();
    }
  }
  // Into the outbox before its bank is released: the producer, once it has the bank back,
  // may rely on the batch being there for whichever thread delivers in turn.
  std::unique_lock<std::mutex> lock(outbox_mutex_);
  const std::shared_ptr<Batch> self = batch;
  outbox_.emplace(batch->seq, std::move(batch));
  self->read.set_value();
  if (delivering_) return;
  delivering_ = true;
  for (auto it = outbox_.find(to_deliver_); it != outbox_.end(); it = outbox_.find(to_deliver_)) {
    std::shared_ptr<Batch> next = std::move(it->second);
    outbox_.erase(it);
    lock.unlock();
    deliver(*next);
    next->delivered.set_value();
    lock.lock();
    ++to_deliver_;
  }
  delivering_ = false;
}

/// Delivers a batch's frames (with their results) and passes its markers, in order. After a
/// failure or a refused frame, frames are dropped and markers still pass.
void BatchRunner::deliver(Batch& batch) {
  Flow ret = flow_.load();
  if (ret == kOk) ret = batch.at_start;  // not run: dropped
  if (ret == kOk && !batch.failure.empty()) ret = hooks_.failed(batch.failure);
  size_t k = 0;
  for (const Item& item : batch.items) {
    if (item.frame) {
      if (ret == kOk) {
        ret = hooks_.deliver(item.token, batch.preds[k]);
      } else {
        hooks_.drop(item.token, true);
      }
      ++k;
    } else {
      hooks_.pass(item.token);
    }
  }
  batch.items.clear();
  if (ret != kOk) flow_.store(ret);
}

void BatchRunner::drop_queue() {
  for (const Item& item : queue_) hooks_.drop(item.token, item.frame);
  queue_.clear();
  pending_ = 0;
  disarm();
}

void BatchRunner::disarm() {
  std::lock_guard<std::mutex> lock(timer_mutex_);
  armed_ = false;
}

/// Hands a partial batch over (through the `due` hook) once it has waited the timeout.
void BatchRunner::timer_loop() {
  std::unique_lock<std::mutex> lock(timer_mutex_);
  while (!quit_) {
    if (!armed_) {
      timer_cond_.wait(lock);
      continue;
    }
    if (timer_cond_.wait_until(lock, deadline_) != std::cv_status::timeout) continue;
    if (quit_ || !armed_ || std::chrono::steady_clock::now() < deadline_) continue;
    lock.unlock();
    hooks_.due();
    lock.lock();
  }
}

}  // namespace cxr::models
