// One worker's share of the routed experts of every MoE layer, and the computation of its partial
// MoE output. Tensor-parallel (default): every expert's intermediate dimension is split across
// `count` shards (rows of gate/up, columns of down), balanced also when it does not divide evenly;
// the partial outputs of all shards sum to the full MoE output. Expert-parallel: whole experts,
// contiguous blocks per shard. The in-process executor is the single shard {index 0, count 1}.
// Load once; Run may be called from one thread at a time (it parallelises inside).
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "common/checkpoint.h"
#include "common/model_config.h"
#include "coordinator/expert_executor.h"
#include "coordinator/model_weights.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/moe_kernel.h"
#include "kernels/cpu/moe_pack.h"

namespace tandem {

struct ShardPlan {
  enum class Mode { kTensorParallel, kExpertParallel };
  Mode mode = Mode::kTensorParallel;
  int index = 0;
  int count = 1;

  absl::Status Validate() const;
  // Tensor-parallel: the intermediate rows [begin, end) of an `intermediate`-wide expert.
  std::pair<int64_t, int64_t> IntermediateRange(int64_t intermediate) const;
  // Expert-parallel: whether this shard holds expert `e` of `num_experts`.
  bool OwnsExpert(int64_t e, int64_t num_experts) const;
};

class ExpertShard {
 public:
  // `kernel` picks the CPU kernel (kernels/cpu/isa.h): kAuto takes the best this machine runs;
  // asking for one it cannot run is FailedPrecondition. bf16 experts are packed once here into
  // that kernel's layout; f32 experts (f16/f32 checkpoints) run through the plain row kernels.
  static absl::StatusOr<std::unique_ptr<ExpertShard>> Load(const ModelConfig& config,
                                                           const Checkpoint& checkpoint,
                                                           const ShardPlan& plan,
                                                           CpuKernel kernel = CpuKernel::kAuto);

  // The single shard {index 0, count 1} over weights already in memory (benchmarks, tests):
  // `experts` is [layer][expert], with config.num_layers layers; a non-MoE layer has no experts.
  // bf16 experts are packed for `kernel` and their unpacked copy freed one by one (peak memory:
  // the unpacked weights plus one packed expert); f32 experts are kept as they are.
  static absl::StatusOr<std::unique_ptr<ExpertShard>> FromWeights(
      const ModelConfig& config, std::vector<std::vector<MlpWeights>> experts,
      CpuKernel kernel = CpuKernel::kAuto);

  // out[T x hidden] = this shard's part of sum_j w[t,j] * expert_{id[t,j]}(hidden[t]).
  // Validates layer and expert ids (InvalidArgument), never crashes on bad input.
  absl::Status Run(const MoeBatch& batch, float* out) const;

  size_t weight_bytes() const { return weight_bytes_; }
  const ShardPlan& plan() const { return plan_; }
  CpuKernel kernel() const { return kernel_.isa; }

 private:
  ExpertShard(const ModelConfig& config, const ShardPlan& plan) : config_(config), plan_(plan) {}
  ModelConfig config_;
  ShardPlan plan_;
  // [layer][expert]; an expert this shard does not hold (or a zero-width slice) has empty weights.
  // A bf16 expert lives in `packed_` (and its `experts_` entry is empty), an f32 one in `experts_`.
  std::vector<std::vector<MlpWeights>> experts_;
  std::vector<std::vector<PackedExpert>> packed_;
  ExpertKernel kernel_;
  size_t weight_bytes_ = 0;
};

}  // namespace tandem
