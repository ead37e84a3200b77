// SPDX-License-Identifier: LGPL-2.1-or-later
// Helper of bench_infer.py: timings that need C++.
//
//   bench-infer raw ARCH SIZE BATCH THREADS SECONDS LAYOUT [STREAMS]  module forward (folded,
//                                                          InferenceMode; LAYOUT channels-last,
//                                                          contiguous, onednn or winograd); with
//                                                          STREAMS, that many threads run it side
//                                                          by side, each with THREADS threads (as
//                                                          cxrinfer's streams and threads)
//   bench-infer pipeline CARD SIZE BATCH THREADS FRAMES [PROPS]  cxrinfer between appsrc (GRAY8
//                                                          noise made up front) and fakesink;
//                                                          PROPS: more cxrinfer properties
//                                                          ("overlap=off")
//   bench-infer predictor CARD BATCH THREADS SECONDS LAYOUT [ENGINE]  Predictor::run on its input bank
//                                                          (LAYOUT auto, channels-last, ...): the
//                                                          per-batch work of cxrinfer's compute
//                                                          thread, without the stream
//   bench-infer rss CARD SIZE BATCH FRAMES [PROPS]         VmRSS while streaming FRAMES scans
//   bench-infer profile ARCH|CARD SIZE BATCH THREADS REPEATS [xnnpack-depthwise]
//                                                          the XNNPACK engine's time per layer
//                                                          (xnnpack-depthwise: depthwise layers on
//                                                          XNNPACK's operator, not the engine's own)
//
// raw's LAYOUT xnnpack times the XNNPACK engine's run() instead of the LibTorch module.
//
// Each prints one line "key value ..." for the driver to parse.
#include <ATen/Parallel.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cxr/engine/xnn_network.hpp"
#include "cxr/models/card.hpp"
#include "cxr/models/classifier.hpp"
#include "cxr/models/predictor.hpp"
#include "cxr/models/weights.hpp"
#include "cxr/runtime/allocator.hpp"
#include "cxr/runtime/blas.hpp"
#include "cxr/runtime/threads.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

long status_kb(const char* field) {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::string(field).size()));
  }
  return -1;
}

std::string blas_libraries() {
  std::ifstream f("/proc/self/maps");
  std::string found;
  for (std::string line; std::getline(f, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if ((path.find("blas") != std::string::npos || path.find("mkl") != std::string::npos) &&
        found.find(path) == std::string::npos) {
      found += (found.empty() ? "" : ",") + path;
    }
  }
  return found.empty() ? "none" : found;
}

// STREAMS threads side by side, each running whole batches of BATCH scans on its own: on thread
// s, make_run(s) gives the call that runs one. All warm up (one call) first, then time their
// own calls together, for BUDGET seconds and 3 calls at least. The rate (scans per second) is
// the sum of theirs.
template <class MakeRun>
double streams_rate(int streams, int batch, double budget, MakeRun make_run) {
  std::vector<double> rates(static_cast<size_t>(streams), 0.0);
  std::atomic<int> warm{0};
  auto work = [&](int s) {
    auto run = make_run(s);
    run();  // warm-up
    ++warm;
    while (warm.load() < streams) std::this_thread::yield();
    int iters = 0;
    const auto t0 = Clock::now();
    do {
      run();
      ++iters;
    } while (seconds_since(t0) < budget || iters < 3);
    rates[static_cast<size_t>(s)] = iters * batch / seconds_since(t0);
  };
  std::vector<std::thread> others;
  for (int s = 1; s < streams; ++s) others.emplace_back(work, s);
  work(0);
  for (auto& t : others) t.join();
  double total = 0;
  for (double r : rates) total += r;
  return total;
}

// The XNNPACK engine's run() (input NCHW, as the Predictor's banks hold it), STREAMS threads side
// by side (each its own execution context), as raw() times the LibTorch module.
int raw_xnnpack(cxr::models::ClassifierImpl& net, int size, int batch, int threads, double budget, int streams) {
  net.eval();
  cxr::engine::XnnOptions o;
  o.height = o.width = size;
  o.max_batch = batch;
  o.threads = std::max(1, threads);
  cxr::engine::XnnNetwork engine(net, o);
  const double total = streams_rate(streams, batch, budget, [&](int s) {
    std::vector<float> x(static_cast<size_t>(batch) * 3 * size * size);
    std::mt19937 rng(static_cast<unsigned>(s));
    std::normal_distribution<float> noise;
    for (auto& v : x) v = noise(rng);
    std::vector<float> logits(static_cast<size_t>(batch) * engine.classes());
    return [&engine, batch, x = std::move(x), logits = std::move(logits)]() mutable {
      engine.run(x.data(), static_cast<size_t>(batch), logits.data());
    };
  });
  std::cout << "raw " << total << " threads " << threads << " streams " << streams << " blas - blas-threads - blas-core -\n";
  return 0;
}

// Per-layer times of the XNNPACK engine (best of REPEATS), one line per layer, then the total.
int profile_xnnpack(const std::string& arch, int size, int batch, int threads, int repeats, bool own_depthwise) {
  std::shared_ptr<cxr::models::ClassifierImpl> net;
  if (arch.size() > 5 && arch.substr(arch.size() - 5) == ".toml") {  // a card: its architecture and weights
    const auto card = cxr::models::load_card(arch);
    net = cxr::models::make_classifier(card.architecture, static_cast<int64_t>(card.classes.size()));
    cxr::models::load_weights(*net, card.weights);
  } else {
    net = cxr::models::make_classifier(arch, 3);
  }
  net->eval();
  cxr::engine::XnnOptions o;
  o.height = o.width = size;
  o.max_batch = batch;
  o.threads = std::max(1, threads);
  o.own_depthwise = own_depthwise;
  cxr::engine::XnnNetwork engine(*net, o);
  std::vector<float> x(static_cast<size_t>(batch) * 3 * size * size, 0.5f);
  const auto times = engine.profile(x.data(), static_cast<size_t>(batch), repeats);
  double total = 0;
  for (const auto& t : times) {
    std::printf("%10.3f ms  %s\n", t.seconds * 1e3, t.name.c_str());
    total += t.seconds;
  }
  std::printf("%10.3f ms  total (batch %d)\n", total * 1e3, batch);
  return 0;
}

int raw(const std::string& arch, int size, int batch, int threads, double budget, const std::string& layout,
        int streams = 1) {
  cxr::runtime::use_caching_cpu_allocator();   // and its allocator, as the Predictor sets it
  cxr::runtime::set_compute_threads(threads);  // as cxrinfer's threads property: LibTorch's and OpenBLAS's
  auto net = cxr::models::make_classifier(arch, 3);
  if (layout == "xnnpack") return raw_xnnpack(*net, size, batch, threads, budget, streams);
  const bool channels_last = layout == "channels-last" || layout == "winograd";
  cxr::models::prepare_for_inference(*net, torch::kCPU, torch::kFloat, channels_last);
  if (layout == "onednn") net->set_onednn(true);
  if (layout == "winograd") net->set_winograd(true);
  // Each stream with `threads` intra-op threads of its own.
  const double total = streams_rate(streams, batch, budget, [&](int) {
    cxr::runtime::set_compute_threads(threads);
    c10::InferenceMode guard;
    auto x = torch::randn({batch, 3, size, size});
    if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    return [&net, x] {
      c10::InferenceMode guard;
      auto y = torch::softmax(net->forward(x), 1);
    };
  });
  const std::string core = cxr::runtime::blas_info().core;
  std::cout << "raw " << total << " threads " << at::get_num_threads() << " streams " << streams << " blas "
            << blas_libraries() << " blas-threads " << cxr::runtime::blas_threads() << " blas-core "
            << (core.empty() ? "-" : core) << "\n";
  return 0;
}

// Predictor::run on its input bank, batch after batch, on this thread: what cxrinfer's compute
// thread does per batch, without the stream.
int predictor(const std::string& card, int batch, int threads, double budget, const std::string& layout,
              const std::string& engine = "auto") {
  cxr::models::PredictorOptions o;
  o.device = "cpu";
  o.engine = engine == "xnnpack"    ? cxr::models::Engine::Xnnpack
             : engine == "libtorch" ? cxr::models::Engine::LibTorch
                                    : cxr::models::Engine::Auto;
  o.max_batch = batch;
  o.threads = threads;
  bool known = false;
  for (auto l : {cxr::models::Layout::Auto, cxr::models::Layout::ChannelsLast, cxr::models::Layout::Contiguous,
                 cxr::models::Layout::OneDnn, cxr::models::Layout::Winograd}) {
    if (layout == cxr::models::to_string(l)) o.layout = l, known = true;
  }
  if (!known) {
    std::cerr << "bench-infer: unknown layout '" << layout << "'\n";
    return 2;
  }
  cxr::models::Predictor p(cxr::models::load_card(card), o);
  for (int i = 0; i < batch; ++i) {
    float* s = p.slot(static_cast<size_t>(i));
    for (size_t k = 0; k < p.input_size(); ++k) s[k] = static_cast<float>((k * 7919 + i) % 255) / 255.0f;
  }
  p.run(static_cast<size_t>(batch));
  int iters = 0;
  const auto t0 = Clock::now();
  do {
    p.run(static_cast<size_t>(batch));
    ++iters;
  } while (seconds_since(t0) < budget || iters < 3);
  std::cout << "predictor " << iters * batch / seconds_since(t0) << " layout " << cxr::models::to_string(p.layout())
            << " engine " << cxr::models::to_string(p.engine()) << "\n";
  return 0;
}

struct Probe {
  int frames = 0;
  int batch = 1;
  Clock::time_point first, last;
  std::vector<long> rss;  // at every 100 frames
};

GstPadProbeReturn on_buffer(GstPad*, GstPadProbeInfo*, gpointer data) {
  auto* p = static_cast<Probe*>(data);
  const auto now = Clock::now();
  if (p->frames == 0) p->first = now;
  p->last = now;
  ++p->frames;
  if (p->frames % 100 == 0) p->rss.push_back(status_kb("VmRSS:"));
  return GST_PAD_PROBE_OK;
}

// The source: appsrc handing out FRAMES scans of noise made once up front (16 distinct ones,
// each buffer a new read-only wrapper of one of them; a copy in the RSS run), so that what the
// figures count beside the forward is cxrinfer and the stream, not a test source's own per-frame
// work (videotestsrc's snow pattern, random numbers per pixel, took ~0.17 ms of a core per
// 224 px frame: ~7 % of MobileNetV3's throughput at batch 8 on 2 vCPUs).
struct Source {
  std::vector<std::vector<guint8>> frames;
  int total = 0;
  int pushed = 0;
  bool copy = false;  // a fresh copy per buffer (the RSS run: a scan leaked anywhere shows)
};

void on_need_data(GstAppSrc* src, guint, gpointer data) {
  auto* s = static_cast<Source*>(data);
  if (s->pushed == s->total) {
    gst_app_src_end_of_stream(src);
    return;
  }
  auto& f = s->frames[static_cast<size_t>(s->pushed) % s->frames.size()];
  GstBuffer* buf = s->copy ? gst_buffer_new_memdup(f.data(), f.size())
                           : gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, f.data(), f.size(), 0, f.size(),
                                                         nullptr, nullptr);
  GST_BUFFER_PTS(buf) = gst_util_uint64_scale(static_cast<guint64>(s->pushed), GST_SECOND, 30);
  GST_BUFFER_DURATION(buf) = GST_SECOND / 30;
  ++s->pushed;
  gst_app_src_push_buffer(src, buf);
}

int pipeline(const std::string& card, int size, int batch, int threads, int frames, bool rss,
             const std::string& props = "") {
  if (threads > 0) at::set_num_threads(threads);
  const std::string desc = "appsrc name=src format=time caps=video/x-raw,format=GRAY8,width=" + std::to_string(size) +
                           ",height=" + std::to_string(size) + ",framerate=30/1 ! cxrinfer name=infer model=" + card +
                           " batch-size=" + std::to_string(batch) +
                           (threads > 0 ? " threads=" + std::to_string(threads) : std::string()) + " " + props +
                           " ! fakesink name=sink sync=false";
  GError* err = nullptr;
  GstElement* pipe = gst_parse_launch(desc.c_str(), &err);
  if (!pipe) {
    std::cerr << "bench-infer: " << err->message << "\n";
    return 1;
  }
  Source source;
  source.total = frames;
  source.copy = rss;
  std::mt19937 rng(7);
  for (int i = 0; i < 16; ++i) {
    // GStreamer's default GRAY8 layout: rows padded to 4 bytes.
    source.frames.emplace_back(static_cast<size_t>((size + 3) / 4 * 4) * static_cast<size_t>(size));
    for (auto& v : source.frames.back()) v = static_cast<guint8>(rng() & 0xff);
  }
  GstElement* src = gst_bin_get_by_name(GST_BIN(pipe), "src");
  GstAppSrcCallbacks callbacks{};
  callbacks.need_data = on_need_data;
  gst_app_src_set_callbacks(GST_APP_SRC(src), &callbacks, &source, nullptr);
  gst_object_unref(src);
  Probe probe;
  probe.batch = batch;
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipe), "sink");
  GstPad* pad = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, &probe, nullptr);
  gst_object_unref(pad);
  gst_object_unref(sink);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipe);
  GstMessage* msg =
      gst_bus_timed_pop_filtered(bus, GST_CLOCK_TIME_NONE, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  int rc = 0;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError* e = nullptr;
    gst_message_parse_error(msg, &e, nullptr);
    std::cerr << "bench-infer: " << e->message << "\n";
    g_error_free(e);
    rc = 1;
  }
  gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
  if (rc) return rc;
  if (rss) {
    std::cout << "rss";
    for (long kb : probe.rss) std::cout << " " << kb;
    std::cout << " hwm " << status_kb("VmHWM:") << "\n";
    return 0;
  }
  // Batches arrive in bursts: from the first burst to the last is (frames - batch) scans' work.
  const double s = std::chrono::duration<double>(probe.last - probe.first).count();
  std::cout << "pipeline " << (probe.frames - batch) / s << " frames " << probe.frames << " threads "
            << at::get_num_threads() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  // As the plugin does when it loads (the raw forward does not load it): OpenBLAS's kernels for
  // this CPU.
  const std::string blas_note = cxr::runtime::tune_blas_core();
  if (!blas_note.empty()) std::cerr << "bench-infer: " << blas_note << "\n";
  const std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if (a.size() == 1 && a[0] == "blas") {  // what the process runs, after the tuning above
      const auto blas = cxr::runtime::blas_info();
      std::cout << "blas-core " << (blas.core.empty() ? "-" : blas.core) << " tuned "
                << (blas_note.empty() ? "no" : "yes") << " library " << blas.library << "\n";
      return 0;
    }
    if ((a.size() == 7 || a.size() == 8) && a[0] == "raw") {
      return raw(a[1], std::stoi(a[2]), std::stoi(a[3]), std::stoi(a[4]), std::stod(a[5]), a[6],
                 a.size() == 8 ? std::stoi(a[7]) : 1);
    }
    if ((a.size() == 6 || a.size() == 7) && a[0] == "predictor") {
      return predictor(a[1], std::stoi(a[2]), std::stoi(a[3]), std::stod(a[4]), a[5], a.size() == 7 ? a[6] : "auto");
    }
    if ((a.size() == 6 || (a.size() == 7 && a[6] == "xnnpack-depthwise")) && a[0] == "profile") {
      return profile_xnnpack(a[1], std::stoi(a[2]), std::stoi(a[3]), std::stoi(a[4]), std::stoi(a[5]), a.size() == 6);
    }
    if ((a.size() == 6 || a.size() == 7) && a[0] == "pipeline") {
      return pipeline(a[1], std::stoi(a[2]), std::stoi(a[3]), std::stoi(a[4]), std::stoi(a[5]), false,
                      a.size() == 7 ? a[6] : std::string());
    }
    if ((a.size() == 5 || a.size() == 6) && a[0] == "rss") {
      return pipeline(a[1], std::stoi(a[2]), std::stoi(a[3]), 0, std::stoi(a[4]), true, a.size() == 6 ? a[5] : std::string());
    }
  } catch (const std::exception& e) {
    std::cerr << "bench-infer: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: bench-infer blas|raw|predictor|pipeline|rss ...\n";
  return 2;
}
