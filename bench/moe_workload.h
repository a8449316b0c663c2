// The routed-MoE benchmark's workload: real expert shapes, random bf16 weights of one layer's
// experts, and random top-k routing of random tokens.
//
// Routing: every token gets top_k distinct experts and softmax weights over random logits. When a
// repetition's tokens need fewer expert slots than there are experts (decode), the experts are
// taken as consecutive windows of a shuffled cycle over all experts, so that successive
// repetitions touch experts not read since the cycle began: the weights come from DRAM, not from
// a cache warmed by the previous repetition. Otherwise every token draws its experts at random.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/model_weights.h"
#include "kernels/cpu/moe_format.h"

namespace tandem::bench {

struct MoeShape {
  std::string name;
  int64_t hidden = 0;
  int64_t intermediate = 0;  // per expert
  int64_t experts = 0;
  int64_t top_k = 0;
};

// "qwen2-57b-a14b", "deepseek-v3", "deepseek-v2.5"; InvalidArgument naming them otherwise.
absl::StatusOr<MoeShape> FindMoeShape(std::string_view name);
std::string MoeShapeNames();

// bf16 bytes of one expert's gate, up and down matrices.
int64_t ExpertBytes(const MoeShape& s);

// /proc/meminfo's MemAvailable in bytes (0 when unreadable).
int64_t MemAvailableBytes();

// Bytes per weight value of experts packed in `format`: 2 (bf16), 1 (int8), 0.5 (int4); the
// scales (~1%) are not counted.
double PackedBytesPerWeight(const ExpertFormat& format);

// Bytes one expert takes in memory while the benchmark runs: our packed copy of weight values
// (`packed_bytes_per_weight`: 2 for bf16, 1 for int8, 0.5 for int4; scales are ~1% and ignored)
// plus oneDNN's copy when it runs (`onednn_bytes_per_weight`, 0 when it does not), and at least
// the bf16 copy, which is whole while the experts are packed.
int64_t HeldExpertBytes(const MoeShape& s, double packed_bytes_per_weight,
                        double onednn_bytes_per_weight);

// The experts to hold: `requested` when given (>= top_k, <= the real count), else the real count
// when all fit (held_expert_bytes each) in 60% of MemAvailable, else the largest count that does
// (never below top_k).
absl::StatusOr<int64_t> ChooseExpertCount(const MoeShape& s, int64_t held_expert_bytes,
                                          std::optional<int64_t> requested);

// `count` experts of random bf16 weights (uniform, scaled by 1/sqrt(fan-in)), generated in
// parallel with OpenMP.
std::vector<MlpWeights> RandomExperts(const MoeShape& s, int64_t count, uint64_t seed);
// Expert `e` of RandomExperts(s, count, seed), alone (same values, for any count > e).
MlpWeights RandomExpert(const MoeShape& s, int64_t e, uint64_t seed);

// One repetition's inputs.
struct MoeInputs {
  int64_t tokens = 0;
  std::vector<float> hidden;          // [tokens x hidden]
  std::vector<int32_t> ids;           // [tokens x top_k]
  std::vector<float> weights;         // [tokens x top_k]
  int64_t distinct_experts = 0;       // experts touched by this repetition
  std::vector<int32_t> distinct_ids;  // those experts, ascending
};

class RoutingGenerator {
 public:
  RoutingGenerator(int64_t experts, int64_t top_k, int64_t hidden, uint64_t seed);
  MoeInputs Next(int64_t tokens);

 private:
  int32_t NextInCycle();
  int64_t experts_, top_k_, hidden_;
  std::mt19937_64 rng_;
  std::vector<int32_t> cycle_;
  size_t cycle_pos_ = 0;
};

}  // namespace tandem::bench
