// SPDX-License-Identifier: LGPL-2.1-or-later
// Per-operation timings of the preprocessing chain on one core: equalize, blur, resize to 255
// on the shorter side, augment (every operation drawn). Prints the median of N runs in ms.
// Usage: bench-ops [scan.png] [iterations]; without a scan, a 1024x1024 8-bit sample.
// The times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that a busy machine
// descheduling the benchmark does not count; wall time beside it.
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "cxr/augment/augment.hpp"
#include "cxr/preprocess/blur.hpp"
#include "cxr/preprocess/equalize.hpp"
#include "cxr/preprocess/resize.hpp"

namespace {

double thread_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double median(std::vector<double> t) {
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

double wall_median = 0;  // of the last median_ms() call

// Median CPU time of fn in ms (and its median wall time in wall_median).
double median_ms(int iterations, const std::function<void()>& fn) {
  std::vector<double> cpu, wall;
  fn();  // warm-up: allocations, page faults, ifunc resolution
  for (int i = 0; i < iterations; ++i) {
    const auto a = std::chrono::steady_clock::now();
    const double c = thread_ms();
    fn();
    cpu.push_back(thread_ms() - c);
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  wall_median = median(wall);
  return median(cpu);
}

}  // namespace

int main(int argc, char** argv) {
  cv::setNumThreads(1);
  const char* samples = std::getenv("CXR_SAMPLES");
  const std::string path =
      argc > 1 ? argv[1] : std::string(samples ? samples : "data/samples") + "/nih/00000773_001.png";
  const int iterations = argc > 2 ? std::atoi(argv[2]) : 200;
  cv::Mat scan = cv::imread(path, cv::IMREAD_GRAYSCALE);
  if (scan.empty()) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return 1;
  }
  using namespace cxr;
  cv::Mat eq, bl, rs, au;
  preprocess::ResizeParams rp;
  rp.size = 255;
  augment::AugmentParams ap;
  const augment::AugmentDraw all{true, true, true};
  preprocess::EqualizeParams clahe;
  clahe.mode = preprocess::EqualizeMode::Clahe;
  cv::Mat eq_ocv, eq_clahe, au_full;

  std::printf("input %s: %dx%d, %d-bit, %d iterations, 1 thread\n", path.c_str(), scan.cols, scan.rows,
              scan.depth() == CV_8U ? 8 : 16, iterations);
  double total = 0;
  auto row = [&](const char* name, double ms, bool chain) {
    if (chain) total += ms;
    std::printf("%-40s %8.3f ms cpu %8.3f ms wall%s\n", name, ms, wall_median, chain ? "" : "  (not in the chain)");
  };
  row("equalize mode=torchvision", median_ms(iterations, [&] { preprocess::equalize(scan, eq, {}); }), true);
  row("equalize mode=opencv", median_ms(iterations, [&] {
        preprocess::EqualizeParams p;
        p.mode = preprocess::EqualizeMode::OpenCV;
        preprocess::equalize(scan, eq_ocv, p);
      }), false);
  row("equalize mode=clahe", median_ms(iterations, [&] { preprocess::equalize(scan, eq_clahe, clahe); }), false);
  row("blur 5x5 sigma 1.1", median_ms(iterations, [&] { preprocess::gaussian_blur(eq, bl, {}); }), true);
  row("resize shorter-side 255 (antialias)", median_ms(iterations, [&] { preprocess::resize(bl, rs, rp); }), true);
  row("augment flip+sharpness+autocontrast 255", median_ms(iterations, [&] { augment::apply(rs, au, ap, all); }),
      true);
  row("augment flip+sharpness+autocontrast full", median_ms(iterations, [&] { augment::apply(bl, au_full, ap, all); }),
      false);
  std::printf("%-40s %8.3f ms\n", "chain total", total);
  return 0;
}
