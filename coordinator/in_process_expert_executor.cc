#include "coordinator/in_process_expert_executor.h"

#include <omp.h>

namespace tandem {

absl::StatusOr<std::unique_ptr<InProcessExpertExecutor>> InProcessExpertExecutor::Create(
    const ModelConfig& config, const Checkpoint& checkpoint, const ExpertShardOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(auto shard, ExpertShard::Load(config, checkpoint, ShardPlan{}, options));
  return std::unique_ptr<InProcessExpertExecutor>(new InProcessExpertExecutor(std::move(shard)));
}

std::string InProcessExpertExecutor::Describe() const {
  return absl::StrCat("in-process (", omp_get_max_threads(), " threads, ",
                      std::string(CpuKernelName(shard_->kernel())), " kernel, ",
                      ExpertFormatName(shard_->format()), " experts, ",
                      std::string(MoeScheduleName(shard_->schedule())), " schedule)");
}

}  // namespace tandem
