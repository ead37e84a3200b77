// SPDX-License-Identifier: LGPL-2.1-or-later
// Parity helper: runs one of our architectures on a raw float32 input tensor and writes logits,
// probabilities and embeddings as raw float32, so a Python script can compare with torchvision.
//
//   cxr-model-run ARCH CLASSES IN.f32 N H W OUT.f32 [--weights W.pth] [--init SEED]
//                 [--train-steps K] [--save OUT.pth] [--no-fold] [--multilabel]
//
// OUT.f32 = logits [N, CLASSES], probabilities [N, CLASSES], embedding [N, D], and the logits
// again computed as classify(features(x)).
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "cxr/models/classifier.hpp"
#include "cxr/models/weights.hpp"

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
    std::string weights, save;
    int64_t seed = -1, train_steps = 0;
    bool fold = true, multilabel = false;
    for (int i = 8; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--weights" && i + 1 < argc) weights = argv[++i];
      else if (a == "--init" && i + 1 < argc) seed = std::stoll(argv[++i]);
      else if (a == "--train-steps" && i + 1 < argc) train_steps = std::stoll(argv[++i]);
      else if (a == "--save" && i + 1 < argc) save = argv[++i];
      else if (a == "--no-fold") fold = false;
      else if (a == "--multilabel") multilabel = true;
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

    auto x = torch::empty({n, 3, h, w}, torch::kFloat);
    std::ifstream in(in_path, std::ios::binary);
    in.read(reinterpret_cast<char*>(x.data_ptr<float>()), static_cast<std::streamsize>(x.nbytes()));
    if (in.gcount() != static_cast<std::streamsize>(x.nbytes())) throw std::runtime_error("short input " + in_path);

    c10::InferenceMode guard;
    auto logits = net->forward(x);
    auto probs = multilabel ? torch::sigmoid(logits) : torch::softmax(logits, 1);
    auto f = net->features(x);
    auto emb = net->embed(f);
    auto split = net->head(emb);
    std::ofstream out(out_path, std::ios::binary);
    for (const auto& t : {logits, probs, emb, split}) {
      auto c = t.contiguous();
      out.write(reinterpret_cast<const char*>(c.data_ptr<float>()), static_cast<std::streamsize>(c.nbytes()));
    }
    if (!out) throw std::runtime_error("cannot write " + out_path);
    std::cout << "features " << f.sizes() << " embedding " << emb.sizes() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "cxr-model-run: " << e.what() << "\n";
    return 1;
  }
}
