#include "numa_worker/moe_task_stream.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace tandem {

absl::StatusOr<MoeSchedule> ParseMoeSchedule(std::string_view name) {
  if (name == "dynamic") return MoeSchedule::kDynamic;
  if (name == "static") return MoeSchedule::kStatic;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown schedule '", std::string(name), "': expected dynamic or static"));
}

std::string_view MoeScheduleName(MoeSchedule schedule) {
  return schedule == MoeSchedule::kStatic ? "static" : "dynamic";
}

MoeTaskStream::MoeTaskStream(const std::vector<MoeTask> (&by_stage)[kMoeStages],
                             int64_t num_experts, bool dataflow)
    : counters_(new StageCounters[num_experts]), dataflow_(dataflow) {
  for (int k = 0; k < kMoeStages; ++k) {
    stage_begin_[k] = size();
    order_.insert(order_.end(), by_stage[k].begin(), by_stage[k].end());
    if (k == kDownStage) continue;  // nothing waits for down
    for (const MoeTask& t : by_stage[k]) counters_[t.expert].Add(static_cast<MoeStage>(k));
  }
  stage_begin_[kMoeStages] = size();
}

}  // namespace tandem
