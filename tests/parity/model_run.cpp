// SPDX-License-Identifier: LGPL-2.1-or-later
// Parity helper: runs one of our architectures on a raw float32 input tensor and writes logits,
// probabilities and embeddings as raw float32, so a Python script can compare with torchvision.
//
//   cxr-model-run ARCH CLASSES IN.f32 N H W OUT.f32 [--weights W.pth] [--init SEED]
//                 [--train-steps K] [--save OUT.pth] [--no-fold] [--multilabel]
//                 [--device D] [--precision fp32|fp16|bf16] [--no-tf32] [--time SECONDS]
//
// OUT.f32 = logits [N, CLASSES], probabilities [N, CLASSES], embedding [N, D], and the logits
// again computed as classify(features(x)), all as float32 whatever the precision. --device runs
// on cuda or cuda:N (as cxrinfer's property), in NCHW at fp32 and channels-last at fp16 / bf16
// (as cxrinfer does on CUDA); --no-tf32 keeps fp32 convolutions and products exact on GPUs that
// would use TF32. --time then prints "rate IMG/S": the forward and softmax of the N scans, brought
// back to the CPU each time, repeated for SECONDS after a warm-up.
//
// It needs only the networks and their runtime (lib/cxr/models, lib/cxr/runtime: no OpenCV,
// GStreamer or DCMTK), so tests/gpu/build-model-run.sh builds it alone against any LibTorch.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "cxr/models/classifier.hpp"
#include "cxr/models/weights.hpp"
#include "cxr/runtime/device.hpp"

int main(int argc, char** argv) {
  if (argc < 8) {
    std::cerr << "usage: cxr-model-run ARCH CLASSES IN.f32 N H W OUT.f32 [options]\n";
    return 2;
  }
  try {
    const std::string arch = argv[1];
    const int64_t classes = std::stoll(argv[2]);
    const std::string in_path = argv[3];
    const int64_t n = std::stoll(argv[4]), h = std::stoll(argv[5]), w = std::stoll(argv[6]);
    const std::string out_path = argv[7];
    std::string weights, save, device_name = "cpu", precision = "fp32";
    int64_t seed = -1, train_steps = 0;
    double time_budget = 0;
    bool fold = true, multilabel = false, tf32 = true;
    for (int i = 8; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--weights" && i + 1 < argc) weights = argv[++i];
      else if (a == "--init" && i + 1 < argc) seed = std::stoll(argv[++i]);
      else if (a == "--train-steps" && i + 1 < argc) train_steps = std::stoll(argv[++i]);
      else if (a == "--save" && i + 1 < argc) save = argv[++i];
      else if (a == "--no-fold") fold = false;
      else if (a == "--multilabel") multilabel = true;
      else if (a == "--device" && i + 1 < argc) device_name = argv[++i];
      else if (a == "--precision" && i + 1 < argc) precision = argv[++i];
      else if (a == "--no-tf32") tf32 = false;
      else if (a == "--time" && i + 1 < argc) time_budget = std::stod(argv[++i]);
      else throw std::invalid_argument("unknown option " + a);
    }
    if (seed >= 0) torch::manual_seed(static_cast<uint64_t>(seed));
    auto net = cxr::models::make_classifier(arch, classes);
    if (!weights.empty()) cxr::models::load_weights(*net, weights);
    if (train_steps > 0) {
      // Moves the BatchNorm statistics away from their initial values, as training would.
      net->train();
      torch::NoGradGuard no_grad;
      for (int64_t s = 0; s < train_steps; ++s) net->forward(torch::randn({2, 3, h, w}) * 2 + 0.5);
    }
    if (!save.empty()) cxr::models::save_weights(*net, save);
    net->eval();
    if (fold) net->fold_batchnorm();
    const torch::Device device = cxr::runtime::resolve_device(device_name);
    const torch::ScalarType dtype = precision == "fp32"   ? torch::kFloat
                                    : precision == "fp16" ? torch::kHalf
                                    : precision == "bf16" ? torch::kBFloat16
                                                          : throw std::invalid_argument("precision " + precision);
    if (device.is_cuda() || dtype != torch::kFloat) {
      if (!device.is_cuda()) throw std::invalid_argument(precision + " needs a CUDA device");
      if (!fold) throw std::invalid_argument("--no-fold runs on the CPU only");
      if (!tf32) {
        at::globalContext().setAllowTF32CuDNN(false);
        at::globalContext().setFloat32MatmulPrecision("highest");
      }
      cxr::models::prepare_for_inference(*net, device, dtype, /*channels_last=*/dtype != torch::kFloat);
    }

    auto x = torch::empty({n, 3, h, w}, torch::kFloat);
    std::ifstream in(in_path, std::ios::binary);
    in.read(reinterpret_cast<char*>(x.data_ptr<float>()), static_cast<std::streamsize>(x.nbytes()));
    if (in.gcount() != static_cast<std::streamsize>(x.nbytes())) throw std::runtime_error("short input " + in_path);

    c10::InferenceMode guard;
    if (device.is_cuda()) {
      x = x.to(device, dtype);
      if (dtype != torch::kFloat) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    }
    auto logits = net->forward(x).to(torch::kFloat);
    auto probs = multilabel ? torch::sigmoid(logits) : torch::softmax(logits, 1);
    auto f = net->features(x);
    auto emb = net->embed(f);
    auto split = net->head(emb).to(torch::kFloat);
    std::ofstream out(out_path, std::ios::binary);
    for (const auto& t : {logits, probs, emb.to(torch::kFloat), split}) {
      auto c = t.to(torch::kCPU).contiguous();
      out.write(reinterpret_cast<const char*>(c.data_ptr<float>()), static_cast<std::streamsize>(c.nbytes()));
    }
    if (!out) throw std::runtime_error("cannot write " + out_path);
    std::cout << "features " << f.sizes() << " embedding " << emb.sizes() << "\n";
    if (time_budget > 0) {
      using Clock = std::chrono::steady_clock;
      for (int i = 0; i < 3; ++i) torch::softmax(net->forward(x), 1).to(torch::kCPU);  // warm-up
      int iters = 0;
      const auto t0 = Clock::now();
      double s = 0;
      do {
        torch::softmax(net->forward(x), 1).to(torch::kCPU);  // waits for the device
        ++iters;
        s = std::chrono::duration<double>(Clock::now() - t0).count();
      } while (s < time_budget || iters < 3);
      std::cout << "rate " << iters * n / s << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "cxr-model-run: " << e.what() << "\n";
    return 1;
  }
}
