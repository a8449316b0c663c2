// Shared by the worker tests: a fixture model opened the way a worker opens it, random MoE
// batches over it, and the reference partial output of a shard computed in the test process.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "common/checkpoint_fingerprint.h"
#include "common/model_config.h"
#include "coordinator/worker_messages.h"
#include "gtest/gtest.h"
#include "numa_worker/expert_shard.h"
#include "tests/fixture_paths.h"

namespace tandem::testing {

struct FixtureModel {
  std::string dir;
  std::unique_ptr<Checkpoint> checkpoint;
  ModelConfig config;
  std::string fingerprint;
  int32_t moe_layer = -1;  // the first MoE layer
};

inline FixtureModel LoadFixtureModel(const std::string& name) {
  FixtureModel m;
  m.dir = FixturesDir() + "/" + name;
  m.checkpoint = *Checkpoint::Open(m.dir);
  m.config = *LoadModelConfig(m.dir);
  m.fingerprint = *CheckpointFingerprint(*m.checkpoint, m.dir + "/config.json");
  for (size_t l = 0; l < m.config.layer_is_moe.size() && m.moe_layer < 0; ++l)
    if (m.config.layer_is_moe[l]) m.moe_layer = static_cast<int32_t>(l);
  return m;
}

// A MoE call that owns its data.
struct Batch {
  int32_t layer = 0;
  int64_t tokens = 0, top_k = 0;
  std::vector<float> hidden, weights;
  std::vector<int32_t> ids;
  MoeBatch View() const {
    return MoeBatch{layer, tokens, top_k, hidden.data(), ids.data(), weights.data()};
  }
  RingRequest Request() const { return ToRingRequest(View()); }
};

// `tokens` random tokens of the first MoE layer, each routed to top_k distinct experts.
inline Batch RandomBatch(const FixtureModel& m, int64_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Batch b;
  b.layer = m.moe_layer;
  b.tokens = tokens;
  b.top_k = m.config.moe.top_k;
  b.hidden.resize(tokens * m.config.hidden_size);
  for (float& x : b.hidden) x = normal(rng);
  std::vector<int32_t> all(m.config.moe.num_experts);
  for (size_t e = 0; e < all.size(); ++e) all[e] = static_cast<int32_t>(e);
  for (int64_t t = 0; t < tokens; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    for (int64_t j = 0; j < b.top_k; ++j) {
      b.ids.push_back(all[j]);
      b.weights.push_back(std::uniform_real_distribution<float>(0.05f, 0.5f)(rng));
    }
  }
  return b;
}

inline ShardPlan Plan(ShardPlan::Mode mode, int index, int count) {
  ShardPlan p;
  p.mode = mode;
  p.index = index;
  p.count = count;
  return p;
}

// The shard's partial output for `b`, computed in this process.
inline std::vector<float> Reference(const FixtureModel& m, const ShardPlan& plan, const Batch& b) {
  std::unique_ptr<ExpertShard> shard = *ExpertShard::Load(m.config, *m.checkpoint, plan);
  std::vector<float> out(b.tokens * m.config.hidden_size);
  EXPECT_TRUE(shard->Run(b.View(), out.data()).ok());
  return out;
}

inline float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

inline v1::LoadShardRequest LoadRequest(const FixtureModel& m, const ShardPlan& plan) {
  return LoadShardRequestFor(m.dir, "", plan, m.fingerprint);
}

}  // namespace tandem::testing
