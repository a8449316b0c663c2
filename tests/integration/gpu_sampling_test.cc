// Token sampling on the GPU (label `gpu`; skips without a GPU): GpuSampler draws exactly the token
// that SampleToken (coordinator/sampler.h) draws on the host, for every rule and combination of
// them, on vocabularies with tied logits; and CudaEngine::ForwardAndSample draws, on every
// fixture, the token the host sampler draws from the same engine's logits.
#include <cmath>
#include <random>

#include "coordinator/cuda/cuda_engine.h"
#include "coordinator/cuda/gpu_sampler.h"
#include "coordinator/loaded_model.h"
#include "gtest/gtest.h"
#include "tests/fixture_paths.h"
#include "tests/gpu_test_support.h"

namespace tandem {
namespace {

std::vector<SamplingParams> ParamSets() {
  std::vector<SamplingParams> sets;
  auto add = [&](double temperature, int64_t top_k, double top_p, double min_p, double penalty) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repetition_penalty = penalty;
    sets.push_back(p);
  };
  add(0, 0, 1, 0, 1);        // greedy
  add(0, 0, 1, 0, 1.3);      // greedy, penalised
  add(1, 0, 1, 0, 1);        // the whole softmax
  add(0.7, 50, 1, 0, 1);     // top-k
  add(1, 0, 0.9, 0, 1);      // top-p
  add(1.2, 0, 1, 0.05, 1);   // min-p
  add(0.8, 40, 0.95, 0.02, 1.1);  // all of them
  add(3, 0, 0.5, 0, 0.8);    // hot, a penalty that raises seen logits
  return sets;
}

// Random logits rounded to quarters, so many are tied, with some -0 and +0.
std::vector<float> TiedLogits(int64_t vocab, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0, 2.5f);
  std::vector<float> logits(vocab);
  for (auto& l : logits) l = std::round(normal(rng) * 4) / 4;
  for (int64_t i = 0; i < vocab; i += 97) logits[i] = (i / 97) % 2 ? -0.0f : 0.0f;
  return logits;
}

TEST(GpuSampler, DrawsWhatTheHostSamplerDraws) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(17);
  for (int64_t vocab : {7, 1000, 151936}) {
    auto sampler = cuda::GpuSampler::Create(vocab);
    ASSERT_TRUE(sampler.ok()) << sampler.status();
    cuda::DeviceBuffer<float> logits;
    ASSERT_TRUE(logits.Reserve(vocab).ok());
    std::uniform_int_distribution<int32_t> id(-2, static_cast<int32_t>(vocab) + 2);
    int draws = 0;
    for (const SamplingParams& params : ParamSets()) {
      for (int trial = 0; trial < 6; ++trial) {
        const std::vector<float> host = TiedLogits(vocab, rng);
        std::vector<int32_t> history(trial * 40 + 1);
        for (auto& h : history) h = id(rng);  // repeats and out-of-range ids included
        for (double u : {0.0, 0.25, 0.5, 0.999, 1.0 - 0x1.0p-53, std::uniform_real_distribution<double>()(rng)}) {
          ASSERT_EQ(cudaMemcpy(logits.data(), host.data(), vocab * sizeof(float),
                               cudaMemcpyHostToDevice),
                    cudaSuccess);
          const cuda::GpuSampler::Draw draw{&params, u, history};
          ASSERT_TRUE((*sampler)->Enqueue(logits.data(), {&draw, 1}, nullptr).ok());
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          ASSERT_EQ((*sampler)->token(0), SampleToken(params, host, history, u))
              << "vocab " << vocab << " temperature " << params.temperature << " top_k "
              << params.top_k << " top_p " << params.top_p << " min_p " << params.min_p
              << " penalty " << params.repetition_penalty << " u " << u;
          ++draws;
        }
      }
    }
    std::printf("[ gpu sampling ] vocab %ld: %d draws equal the host's\n", static_cast<long>(vocab),
                draws);
  }
}

// One Enqueue of several draws (a batched step): each row with its own parameters and history,
// a row without parameters skipped.
TEST(GpuSampler, BatchedDrawsEachMatchTheHost) {
  SKIP_WITHOUT_GPU();
  constexpr int64_t kVocab = 5000;
  std::mt19937_64 rng(5);
  auto sampler = cuda::GpuSampler::Create(kVocab);
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  std::vector<float> host;
  for (int r = 0; r < 4; ++r) {
    auto row = TiedLogits(kVocab, rng);
    host.insert(host.end(), row.begin(), row.end());
  }
  cuda::DeviceBuffer<float> logits;
  ASSERT_TRUE(logits.Reserve(host.size()).ok());
  ASSERT_EQ(cudaMemcpy(logits.data(), host.data(), host.size() * sizeof(float),
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  const std::vector<SamplingParams> sets = ParamSets();
  const SamplingParams &greedy_penalised = sets[1], &all = sets[6], &hot = sets[7];
  const std::vector<int32_t> h1 = {1, 2, 2, 4000}, h2 = {7, 7, 9}, h3 = {};
  const std::vector<cuda::GpuSampler::Draw> draws = {
      {nullptr, 0, {}}, {&greedy_penalised, 0, h1}, {&all, 0.37, h2}, {&hot, 0.91, h3}};
  ASSERT_TRUE((*sampler)->Enqueue(logits.data(), draws, nullptr).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ((*sampler)->token(0), -1);
  for (size_t i = 1; i < draws.size(); ++i) {
    std::span<const float> row(host.data() + i * kVocab, kVocab);
    EXPECT_EQ((*sampler)->token(i), SampleToken(*draws[i].params, row, draws[i].history,
                                                draws[i].u))
        << "draw " << i;
  }
}

TEST(GpuSampler, EngineSamplesTheTokenTheHostDrawsFromItsLogits) {
  SKIP_WITHOUT_GPU();
  for (const std::string& dir : testing::ModelFixtureDirs()) {
    LoadOptions options;
    options.device = Device::kCuda;
    options.workers = 0;
    options.load_tokenizer = false;
    auto model = LoadModel(dir, options);
    ASSERT_TRUE(model.ok()) << model.status();
    Engine& engine = *model->engine;
    SamplingParams params;
    params.temperature = 0.9;
    params.top_p = 0.95;
    params.repetition_penalty = 1.2;
    params.seed = 99;
    Sampler on_gpu(params), on_host(params);
    auto gpu_cache = engine.NewCache(64), host_cache = engine.NewCache(64);
    std::vector<int32_t> history = {5, 17, 17, 42};
    std::vector<int32_t> step = history;
    for (int i = 0; i < 12; ++i) {
      auto drawn = engine.ForwardAndSample(step, *gpu_cache, on_gpu, history);
      ASSERT_TRUE(drawn.ok()) << drawn.status();
      auto logits = engine.Forward(step, *host_cache);
      ASSERT_TRUE(logits.ok()) << logits.status();
      ASSERT_EQ(*drawn, on_host.Sample(*logits, history)) << dir << " step " << i;
      history.push_back(*drawn);
      step.assign(1, *drawn);
    }
  }
}

}  // namespace
}  // namespace tandem
