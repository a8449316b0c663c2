// How ExpertShard::Run (expert_shard.h) hands its work to the threads of its OpenMP region: the
// schedule, the task loop with look-ahead (ForTasksAhead), and the order of the tasks of Run's
// stages with the per-expert counters that let each task wait only for what it reads
// (MoeTaskStream).
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem {

// How Run hands out its tasks to the pinned threads.
//   kDynamic: threads take the next task from a shared atomic counter (an expert with many tokens
//             does not hold up the others), over the whole stream at once (the dataflow above),
//             or stage by stage with a barrier between (AmxTuning::dataflow off, for measuring);
//   kStatic:  stage by stage, thread i takes the i-th contiguous slice of each stage's tasks (for
//             measuring the difference).
enum class MoeSchedule { kDynamic, kStatic };
// "dynamic" | "static"; InvalidArgument otherwise.
absl::StatusOr<MoeSchedule> ParseMoeSchedule(std::string_view name);
std::string_view MoeScheduleName(MoeSchedule schedule);

// Runs fn(i, after) for i in [begin, end) on the threads of the enclosing parallel region (or the
// one thread outside one), where `after` is the index the thread runs after i (-1: none or
// unknown). Dynamic: each thread takes the next index from `next` (zero before the region; shared
// by all threads); with claim_ahead it claims its next index before it runs the current one (so at
// the end a thread may hold one task more), which lets the AMX kernels fetch that task's first
// weights into L2 while i's last K block runs (RowsAhead, moe_kernel.h); without, after is always
// -1. Either way each thread's indices increase. Static: thread j takes the j-th contiguous slice,
// after = the slice's next index. Ends with a barrier.
template <typename Fn>
void ForTasksAhead(int64_t begin, int64_t end, MoeSchedule schedule, bool claim_ahead,
                   std::atomic<int64_t>* next, Fn fn) {
  const int64_t count = end - begin;
  if (schedule == MoeSchedule::kDynamic && claim_ahead) {
    int64_t i = next->fetch_add(1, std::memory_order_relaxed);
    while (i < count) {
      const int64_t after = next->fetch_add(1, std::memory_order_relaxed);
      fn(begin + i, after < count ? begin + after : -1);
      i = after;
    }
  } else if (schedule == MoeSchedule::kDynamic) {
    for (int64_t i = next->fetch_add(1, std::memory_order_relaxed); i < count;
         i = next->fetch_add(1, std::memory_order_relaxed))
      fn(begin + i, int64_t{-1});
  } else {
    const int64_t threads = omp_get_num_threads(), j = omp_get_thread_num();
    const int64_t first = begin + count * j / threads, last = begin + count * (j + 1) / threads;
    for (int64_t i = first; i < last; ++i) fn(i, i + 1 < last ? i + 1 : -1);
  }
#pragma omp barrier
}

// ForTasksAhead without look-ahead: fn(i) for i in [0, count).
template <typename Fn>
void ForTasks(int64_t count, MoeSchedule schedule, std::atomic<int64_t>* next, Fn fn) {
  ForTasksAhead(0, count, schedule, false, next, [&](int64_t i, int64_t) { fn(i); });
}

// Run's stages, in the order an expert goes through them.
enum MoeStage : int { kGatherStage, kGateUpStage, kActFormsStage, kDownStage, kMoeStages };

// One task: rows [r0, r1) of one stage of active expert `expert` (gather and act forms: token
// rows of the expert; gate/up: intermediate rows; down: hidden rows).
struct MoeTask {
  MoeStage stage;
  int64_t expert, r0, r1;
};

// One expert's unfinished tasks of each stage but the last. A task finishes with Finish (release),
// and a task of stage k starts after WaitForStagesBefore(k) (acquire) has seen every earlier stage
// at zero, so all that the expert's earlier tasks wrote is visible to it -- also when a stage in
// between has no tasks. Cache-line sized: threads of other experts update their counters without
// sharing a line.
class alignas(64) StageCounters {
 public:
  void Add(MoeStage stage) { left_[stage].fetch_add(1, std::memory_order_relaxed); }
  void Finish(MoeStage stage) { left_[stage].fetch_sub(1, std::memory_order_release); }
  // Returns when every task of the stages before `stage` has finished. Spins: Run's threads are
  // one per core and a wait lasts at most a task; past kSpinsBeforeYield pauses it also yields,
  // so that where threads outnumber cores (tests) it does not hold the core of the thread it waits
  // for.
  void WaitForStagesBefore(MoeStage stage) const {
    for (int k = 0; k < stage; ++k) {
      for (int spins = 0; left_[k].load(std::memory_order_acquire) > 0; ++spins) {
        _mm_pause();
        if (spins >= kSpinsBeforeYield) std::this_thread::yield();
      }
    }
  }

 private:
  static constexpr int kSpinsBeforeYield = 4096;  // ~0.1-0.5 ms of pauses
  std::atomic<int64_t> left_[kDownStage] = {};
};

// The tasks of one Run, in stage order: all gather tasks, then all gate/up tasks, and so on.
// Stage by stage, each stage ends with a barrier, so nothing ever waits. As a dataflow (dynamic
// schedule only; the static one is there to measure fixed slices of each stage against), the
// stream runs without barriers: a thread waits only when it reaches a task whose expert's
// previous stage is still running, not after every stage for its last task (the tails, when every
// thread but the last idles), and the memory-bound act forms (the tile unit idles while they run)
// overlap other experts' matrix tasks. Why it cannot deadlock: a task's dependencies come before it
// in the stream, and claims go in stream order, so every task before a claimed one is claimed too
// -- by a thread that runs it, waits on tasks earlier still, or (claiming ahead) holds it while it
// runs an earlier task; the earliest unfinished task can always run. A held task may keep the
// tasks that wait for it spinning for the rest of its holder's current task (at the gate/up-to-act
// forms transition, ~1% of an int8 call at 1024 tokens by estimate; ExpertShard::Run makes no
// act-forms tasks for experts that have none to do). (Interleaving the stages of successive
// experts, so that gathers also overlap matrix tasks, measured slower: up to 21% at 4096 tokens,
// bench/RESULTS.md, ninth pass.)
class MoeTaskStream {
 public:
  // by_stage[k]: stage k's tasks, of experts in [0, num_experts); an expert with no tasks of a
  // stage is done with it. `dataflow`: run as one stream where the schedule is dynamic.
  MoeTaskStream(const std::vector<MoeTask> (&by_stage)[kMoeStages], int64_t num_experts,
                bool dataflow);

  int64_t size() const { return static_cast<int64_t>(order_.size()); }
  const MoeTask& task(int64_t i) const { return order_[i]; }

  // Runs every task on the threads of the enclosing parallel region (or the one thread outside
  // one): waits until the task's expert has finished the stages before, runs fn(task, after)
  // (`after`: the index of the task this thread runs next, or -1, as ForTasksAhead's), and counts
  // it finished; as a dataflow when the stream was made for one and `schedule` is dynamic, else
  // stage by stage. `next` holds kMoeStages counters, zero before the region. Ends with a barrier.
  // Call once per stream.
  template <typename Fn>
  void Run(MoeSchedule schedule, bool claim_ahead, std::atomic<int64_t>* next, Fn fn) {
    auto run = [&](int64_t i, int64_t after) {
      const MoeTask& t = order_[i];
      StageCounters& c = counters_[t.expert];
      c.WaitForStagesBefore(t.stage);
      fn(t, after);
      if (t.stage != kDownStage) c.Finish(t.stage);
    };
    if (dataflow_ && schedule == MoeSchedule::kDynamic) {
      ForTasksAhead(0, size(), schedule, claim_ahead, &next[0], run);
      return;
    }
    for (int k = 0; k < kMoeStages; ++k)
      ForTasksAhead(stage_begin_[k], stage_begin_[k + 1], schedule, claim_ahead, &next[k], run);
  }

 private:
  std::vector<MoeTask> order_;
  std::unique_ptr<StageCounters[]> counters_;
  bool dataflow_;
  int64_t stage_begin_[kMoeStages + 1] = {};  // stage by stage: where each stage starts
};

}  // namespace tandem
