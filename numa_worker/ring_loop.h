// The thread that serves one attached ring: waits for each request (RingConsumer), computes this
// worker's partial MoE output with its ExpertShard straight into the slot's result area, and
// answers it. Requests are served one at a time, in sequence order; the parallelism is inside
// ExpertShard::Run (OpenMP, the team pinned by PinOpenMpTeam on this thread).
//
// Errors. A request the consumer or ExpertShard::Run rejects (bad header, layer or expert id) is
// answered with that error (the coordinator's WaitResult returns it) and the loop goes on.
// DataLoss (sequence numbers out of order: a broken or foreign producer) is logged and counted,
// and the loop stops serving this ring for good: the coordinator notices through its deadline /
// liveness check and re-attaches a fresh ring. Nothing read from the ring can crash the loop.
//
// Threads. Start and Stop from one control thread at a time (WorkerCore holds its lock);
// the loop runs on its own thread, which it creates and joins.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "common/model_config.h"
#include "common/shm_ring.h"
#include "numa_worker/cpu_binding.h"
#include "numa_worker/expert_shard.h"
#include "numa_worker/worker_counters.h"

namespace tandem {

struct RingLoopConfig {
  const ExpertShard* shard = nullptr;   // must outlive the loop
  const ModelConfig* config = nullptr;  // must outlive the loop
  // Bytes of one expert's slice in this shard, and whether the shard holds expert e at all
  // (expert-parallel shards hold a subset); for Stats.expert_bytes_read.
  uint64_t bytes_per_expert = 0;
  std::vector<bool> holds_expert;
  CpuBinding binding;                  // the OpenMP team of the loop thread is pinned to it
  WorkerCounters* counters = nullptr;  // must outlive the loop
  // How often the loop notices Stop() while idle (the futex sleep is shorter still).
  absl::Duration poll = absl::Milliseconds(100);
  RingWaitOptions wait;
};

class RingLoop {
 public:
  // Takes the region (already opened and validated against the model) and starts serving it.
  static std::unique_ptr<RingLoop> Start(std::unique_ptr<RingRegion> region, RingLoopConfig config);

  ~RingLoop();  // Stop()
  RingLoop(const RingLoop&) = delete;
  RingLoop& operator=(const RingLoop&) = delete;

  // Stops the thread (within a few milliseconds once it is idle; a request being computed is
  // finished and answered first), joins it and unmaps the region. Idempotent.
  void Stop();

  // False once the loop has ended: stopped, or given up on a broken ring.
  bool serving() const { return serving_.load(std::memory_order_acquire); }
  const std::string& ring_name() const { return region_->name(); }

 private:
  RingLoop(std::unique_ptr<RingRegion> region, RingLoopConfig config);
  void Run();
  // Computes and answers one request; false if the ring can no longer be served.
  bool Serve(RingConsumer& consumer, const RingRequestView& view);
  uint64_t ExpertBytesUsed(const RingRequestView& view);

  std::unique_ptr<RingRegion> region_;
  RingLoopConfig config_;
  std::vector<uint64_t> expert_stamp_;  // loop thread only: last request seq that used expert e
  std::atomic<bool> stop_{false};
  std::atomic<bool> serving_{true};
  std::thread thread_;
};

}  // namespace tandem
