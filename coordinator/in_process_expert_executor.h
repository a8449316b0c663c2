// ExpertExecutor that runs the routed experts in this process, over weights it reads from the
// checkpoint itself (bf16 / f32, FP8 dequantized at load). Tokens are grouped per expert; each
// expert's rows run through the CPU linear kernels. Engine thread only.
#pragma once

#include <memory>
#include <vector>

#include "common/checkpoint.h"
#include "common/model_config.h"
#include "coordinator/expert_executor.h"
#include "coordinator/model_weights.h"

namespace tandem {

class InProcessExpertExecutor : public ExpertExecutor {
 public:
  static absl::StatusOr<std::unique_ptr<InProcessExpertExecutor>> Create(
      const ModelConfig& config, const Checkpoint& checkpoint);

  absl::Status Run(const MoeBatch& batch, float* out) override;
  std::string Describe() const override;

  size_t weight_bytes() const;

 private:
  explicit InProcessExpertExecutor(const ModelConfig& config) : config_(config) {}
  ModelConfig config_;
  std::vector<std::vector<MlpWeights>> experts_;  // [layer][expert]; empty for dense layers
};

// Loads routed expert `expert` of `layer` (per-expert tensors, or transformers >= 5 fused ones).
absl::StatusOr<MlpWeights> LoadRoutedExpert(const ModelConfig& config, const Checkpoint& checkpoint,
                                            int64_t layer, int64_t expert);

}  // namespace tandem
