// One worker's share of the routed experts of every MoE layer, and the computation of its partial
// MoE output. Tensor-parallel (default): every expert's intermediate dimension is split across
// `count` shards (rows of gate/up, columns of down), balanced also when it does not divide evenly;
// the partial outputs of all shards sum to the full MoE output. Expert-parallel: whole experts,
// contiguous blocks per shard. The in-process executor is the single shard {index 0, count 1}.
// Load once; Run may be called from any thread: concurrent calls take turns (each parallelises
// inside, over all of the process's OpenMP threads).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/checkpoint.h"
#include "common/model_config.h"
#include "coordinator/expert_executor.h"
#include "coordinator/model_weights.h"
#include "kernels/cpu/aligned_bytes.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/moe_format.h"
#include "kernels/cpu/moe_kernel.h"
#include "kernels/cpu/moe_pack.h"
#include "numa_worker/moe_task_stream.h"  // MoeSchedule

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

struct ExpertShardOptions {
  // The CPU kernel (kernels/cpu/isa.h): kAuto takes the best this machine runs; asking for one it
  // cannot run is FailedPrecondition.
  CpuKernel kernel = CpuKernel::kAuto;
  // The format experts are packed in (`--expert-dtype`, moe_format.h). bf16 packs bf16 experts as
  // they are and keeps f32 experts (f16/f32 checkpoints) unpacked, run by the plain row kernels;
  // int8 / int4 quantize every expert, bf16 or f32, at load.
  ExpertFormat format;
  MoeSchedule schedule = MoeSchedule::kDynamic;
};

// Wall time of each phase of one ExpertShard::Run, in ms (their sum is the call's time less the
// grouping of tokens by expert before the threads start). Under the dataflow schedule
// (moe_task_stream.h) the stages overlap, and a phase is the time from the end of the phase before
// to when the stage's last task finished.
struct MoeRunPhases {
  double gather_ms = 0;     // tokens copied to their experts' rows, activation forms of x
  double gate_up_ms = 0;    // act = silu(gate x) * up x
  double act_forms_ms = 0;  // activation forms of act
  double down_ms = 0;       // y = down act
  double combine_ms = 0;    // out = sum of routing weight * y
};

// Intermediate rows [begin, end) of a whole expert (gate and up rows, down columns): the part a
// tensor-parallel shard holds. bf16 or f32 weights; biases are not expected on experts.
MlpWeights SliceExpert(const MlpWeights& expert, int64_t begin, int64_t end);

class ExpertShard {
 public:
  // Loads and packs this shard's experts once (see ExpertShardOptions).
  static absl::StatusOr<std::unique_ptr<ExpertShard>> Load(
      const ModelConfig& config, const Checkpoint& checkpoint, const ShardPlan& plan,
      const ExpertShardOptions& options = ExpertShardOptions{});

  // The single shard {index 0, count 1} over weights already in memory (benchmarks, tests):
  // `experts` is [layer][expert], with config.num_layers layers; a non-MoE layer has no experts.
  // Experts are packed and their unpacked copy freed one by one (peak memory: the unpacked weights
  // plus one packed expert); f32 experts in the bf16 format are kept as they are.
  static absl::StatusOr<std::unique_ptr<ExpertShard>> FromWeights(
      const ModelConfig& config, std::vector<std::vector<MlpWeights>> experts,
      const ExpertShardOptions& options = ExpertShardOptions{});
  // As FromWeights, with each expert asked for (`source(layer, expert)`) only when it is packed,
  // so only the experts being packed are unpacked: how the synthetic benchmark holds models
  // larger than their unpacked size. An empty MlpWeights means the shard does not hold that
  // expert. A layer's experts are generated and packed in parallel (OpenMP), so `source` must be
  // safe to call concurrently for different experts. `plan` is the slice the source gives (a
  // tensor-parallel source returns each expert's rows of the plan; see SliceExpert).
  using ExpertSource = std::function<absl::StatusOr<MlpWeights>(int64_t layer, int64_t expert)>;
  static absl::StatusOr<std::unique_ptr<ExpertShard>> FromSource(
      const ModelConfig& config, const ExpertSource& source,
      const ExpertShardOptions& options = ExpertShardOptions{}, const ShardPlan& plan = {});

  // out[T x hidden] = this shard's part of sum_j w[t,j] * expert_{id[t,j]}(hidden[t]).
  // Validates layer and expert ids (InvalidArgument), never crashes on bad input. When `phases`
  // is given, it receives the wall time of each phase of this call (for benchmarks).
  absl::Status Run(const MoeBatch& batch, float* out, MoeRunPhases* phases = nullptr) const;

  // Bytes of all experts held, as stored (packed values, scales, row sums).
  size_t weight_bytes() const { return weight_bytes_; }
  // Bytes of one expert as stored (0 when this shard does not hold it).
  size_t expert_bytes(int64_t layer, int64_t expert) const;
  const ShardPlan& plan() const { return plan_; }
  CpuKernel kernel() const { return kernel_.isa; }
  const ExpertFormat& format() const { return format_; }
  MoeSchedule schedule() const { return schedule_; }

 private:
  ExpertShard(const ModelConfig& config, const ShardPlan& plan) : config_(config), plan_(plan) {}
  // An empty shard with its kernel resolved and its [layer][expert] tables sized.
  static absl::StatusOr<std::unique_ptr<ExpertShard>> Create(const ModelConfig& config,
                                                             const ShardPlan& plan,
                                                             const ExpertShardOptions& options);
  // Packs (or keeps, f32 in the bf16 format) one expert's weights. Concurrent calls for
  // different (layer, expert) slots are safe.
  absl::Status Add(int64_t layer, int64_t expert, MlpWeights weights);
  // The kernel for an expert with `tokens` tokens (activation precision chosen per expert).
  ExpertKernel KernelFor(int64_t tokens) const;
  ModelConfig config_;
  ShardPlan plan_;
  // [layer][expert]; an expert this shard does not hold (or a zero-width slice) has empty weights.
  // A bf16 expert lives in `packed_` (and its `experts_` entry is empty), an f32 one in `experts_`.
  std::vector<std::vector<MlpWeights>> experts_;
  std::vector<std::vector<PackedExpert>> packed_;
  // Run's buffers, kept between calls (Run holds the lock: concurrent calls take turns).
  struct Scratch {
    // x, y, act, up: in transparent huge pages from 4 MB up (aligned_bytes.h), like the kernels'
    // other operands: the kernels write y and act in 64-byte pieces of up to 32 rows at once, each
    // row on its own 4 KB page. Never zero-filled (every call writes before it reads), and sized
    // by Run for a token count's most rows, so a call regrows them only for more tokens than any
    // call before it (bench/RESULTS.md, eighth pass: page faults inside the timed calls).
    ScratchArray<float> x, y, act, up;
    ActivationBuffer x_forms, act_forms;
    ActivationBuffer token_q8;  // int8 form of each token (AMX experts of int8 weights)
  };
  mutable absl::Mutex scratch_mu_;
  mutable Scratch scratch_ ABSL_GUARDED_BY(scratch_mu_);
  ExpertKernel kernel_;
  ExpertFormat format_;
  MoeSchedule schedule_ = MoeSchedule::kDynamic;
  std::atomic<size_t> weight_bytes_{0};  // Add may run on several threads (FromSource)
};

}  // namespace tandem
