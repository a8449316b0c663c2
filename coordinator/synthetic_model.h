// Real model shapes with random weights, built in memory (no checkpoint files): what
// `tandem bench --synthetic` runs, so the hybrid GPU + CPU path can be measured at the sizes of
// Qwen2-57B-A14B, DeepSeek-V3 and DeepSeek-V2.5 on a machine that has none of their checkpoints.
// Weights are uniform in +-sqrt(3 / fan_in) (unit-variance outputs for unit-variance inputs), norms
// are 1, and every value follows from the seed alone. Callable from any one thread; generation is
// parallel inside (OpenMP).
#pragma once

#include <memory>
#include <string>

#include "common/model_config.h"
#include "coordinator/in_process_expert_executor.h"
#include "coordinator/model_weights.h"

namespace tandem {

// "qwen2-57b-a14b", "deepseek-v3", "deepseek-v2.5".
std::string SyntheticPresetNames();

// The preset's config as its hub config.json gives it, cut to its first `layers` decoder layers
// when layers > 0 (the dense-first layout of DeepSeek is kept). InvalidArgument for an unknown
// preset or layers out of range.
absl::StatusOr<ModelConfig> SyntheticConfig(const std::string& preset, int64_t layers);

// What a synthetic model's coordinator and workers compare instead of a checkpoint fingerprint.
std::string SyntheticFingerprint(const std::string& preset, int64_t layers, uint64_t seed);

// The coordinator's weights (everything but the routed experts), bf16.
ModelWeights RandomModelWeights(const ModelConfig& config, uint64_t seed);

// The random routed experts of `config`, as the slice `plan` holds (an empty MlpWeights for an
// expert it does not hold): every worker of a synthetic run builds its own part.
ExpertShard::ExpertSource RandomExpertSource(const ModelConfig& config, uint64_t seed,
                                             const ShardPlan& plan = {});

// An in-process executor over random routed experts, each generated as it is packed in
// `options.format` (peak memory: the packed experts plus one expert unpacked).
absl::StatusOr<std::unique_ptr<InProcessExpertExecutor>> RandomExpertExecutor(
    const ModelConfig& config, const ExpertShardOptions& options, uint64_t seed);

}  // namespace tandem
