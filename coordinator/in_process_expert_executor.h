// ExpertExecutor that runs the routed experts in this process: the single expert shard holding
// every expert whole, loaded by this process from the checkpoint. Engine thread only.
#pragma once

#include <memory>

#include "common/checkpoint.h"
#include "common/model_config.h"
#include "coordinator/expert_executor.h"
#include "numa_worker/expert_shard.h"

namespace tandem {

class InProcessExpertExecutor : public ExpertExecutor {
 public:
  static absl::StatusOr<std::unique_ptr<InProcessExpertExecutor>> Create(
      const ModelConfig& config, const Checkpoint& checkpoint,
      const ExpertShardOptions& options = ExpertShardOptions{});

  // Over a shard already built (e.g. from random weights: coordinator/synthetic_model.h).
  static std::unique_ptr<InProcessExpertExecutor> FromShard(std::unique_ptr<ExpertShard> shard) {
    return std::unique_ptr<InProcessExpertExecutor>(new InProcessExpertExecutor(std::move(shard)));
  }

  absl::Status Run(const MoeBatch& batch, float* out) override { return shard_->Run(batch, out); }
  std::string Describe() const override;
  size_t weight_bytes() const { return shard_->weight_bytes(); }
  const ExpertShard& shard() const { return *shard_; }

 private:
  explicit InProcessExpertExecutor(std::unique_ptr<ExpertShard> shard) : shard_(std::move(shard)) {}
  std::unique_ptr<ExpertShard> shard_;
};

}  // namespace tandem
