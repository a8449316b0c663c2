// MoeTaskStream (numa_worker/moe_task_stream.h), the order and schedule of ExpertShard::Run's
// stages: every task is in the stream once, in stage order (so after its expert's tasks of the
// stage before); when run, no task starts before those have finished -- in the dataflow and
// stage by stage, under both schedules, with and without claiming ahead. The first task of each
// expert's gather and gate/up stages is slow, so a task that did not wait for it would start while
// it still runs.
#include "numa_worker/moe_task_stream.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace tandem {
namespace {

// Tasks per expert of each stage; expert 2 has no gate/up tasks (a zero-width slice).
constexpr int64_t kExperts = 6;
constexpr int64_t kPerExpert[kMoeStages] = {2, 3, 1, 4};

int64_t TasksOf(int k, int64_t e) { return k == kGateUpStage && e == 2 ? 0 : kPerExpert[k]; }

void MakeTasks(std::vector<MoeTask> (&by_stage)[kMoeStages]) {
  for (int k = 0; k < kMoeStages; ++k)
    for (int64_t e = 0; e < kExperts; ++e)
      for (int64_t j = 0; j < TasksOf(k, e); ++j)
        by_stage[k].push_back({static_cast<MoeStage>(k), e, j, j + 1});
}

TEST(MoeTaskStreamTest, EveryTaskComesOnceAndAfterItsExpertsStageBefore) {
  std::vector<MoeTask> by_stage[kMoeStages];
  MakeTasks(by_stage);
  for (bool dataflow : {false, true}) {
    MoeTaskStream stream(by_stage, kExperts, dataflow);
    std::map<std::tuple<int, int64_t, int64_t>, int> seen;
    int64_t done[kMoeStages][kExperts] = {};  // tasks of (stage, expert) so far in the order
    int last_stage = 0;
    for (int64_t i = 0; i < stream.size(); ++i) {
      const MoeTask& t = stream.task(i);
      ++seen[{t.stage, t.expert, t.r0}];
      for (int k = 0; k < t.stage; ++k) {
        EXPECT_EQ(done[k][t.expert], TasksOf(k, t.expert)) << i;
      }
      ++done[t.stage][t.expert];
      EXPECT_GE(t.stage, last_stage) << "stage order: " << i;
      last_stage = t.stage;
    }
    int64_t total = 0;
    for (int k = 0; k < kMoeStages; ++k) total += static_cast<int64_t>(by_stage[k].size());
    EXPECT_EQ(stream.size(), total);
    for (const auto& [key, count] : seen) EXPECT_EQ(count, 1);
  }
}

TEST(MoeTaskStreamTest, TasksWaitForTheirExpertsPreviousStage) {
  std::vector<MoeTask> by_stage[kMoeStages];
  MakeTasks(by_stage);
  for (MoeSchedule schedule : {MoeSchedule::kDynamic, MoeSchedule::kStatic}) {
    for (bool dataflow : {false, true}) {
      for (bool claim_ahead : {false, true}) {
        MoeTaskStream stream(by_stage, kExperts, dataflow);
        std::vector<std::atomic<int>> runs(stream.size());
        std::atomic<int64_t> finished[kMoeStages][kExperts] = {};
        std::atomic<int> early{0}, bad_after{0};
        std::atomic<int64_t> next[kMoeStages] = {};
        // Per thread: the task it said it runs next (`after`), -1 for none.
        std::vector<int64_t> announced(6, -1);
#pragma omp parallel num_threads(6)
        stream.Run(schedule, claim_ahead, next, [&](const MoeTask& t, int64_t after) {
          const int64_t i = &t - &stream.task(0);
          int64_t& said = announced[omp_get_thread_num()];
          if ((said != -1 && said != i) || (after != -1 && after <= i) || after >= stream.size())
            ++bad_after;
          said = after;
          // Every earlier stage of the expert, also past a stage without tasks (expert 2).
          for (int k = 0; k < t.stage; ++k)
            if (finished[k][t.expert].load() != TasksOf(k, t.expert)) ++early;
          if ((t.stage == kGatherStage || t.stage == kGateUpStage) && t.r0 == 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          ++runs[i];
          ++finished[t.stage][t.expert];
        });
        const std::string what = std::string(MoeScheduleName(schedule)) +
                                 (dataflow ? ", dataflow" : ", by stage") +
                                 (claim_ahead ? ", claim ahead" : "");
        EXPECT_EQ(early.load(), 0) << what;
        EXPECT_EQ(bad_after.load(), 0) << what;
        for (int64_t i = 0; i < stream.size(); ++i) EXPECT_EQ(runs[i].load(), 1) << what << i;
      }
    }
  }
}

}  // namespace
}  // namespace tandem
