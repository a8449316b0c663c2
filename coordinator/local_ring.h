// One shared-memory ring inside this process, served by a thread of its own that runs an
// in-process ExpertExecutor: it lets the GPU's ring handoff (coordinator/cuda/ring_handoff.h),
// and the CUDA graphs it is captured in, drive in-process experts exactly as it drives NUMA
// workers (the GPU publishes, the thread answers, the GPU waits on the done flag). The thread
// must not be the engine's: a CUDA call that blocks while the engine enqueues (a lazily loaded
// kernel, a buffer freed) would otherwise wait for a GPU that waits for the engine thread.
// Like a worker's ring loop, the thread pins its OpenMP team (to the CPUs the creating thread
// may use) and polls, since a GPU cannot wake it. Public methods: engine thread only.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "common/shm_ring.h"
#include "coordinator/expert_executor.h"

namespace tandem {

class LocalRing : public ExpertRings {
 public:
  // A ring of `capacity` over `executor` (not owned; must outlive this) for a model of
  // `num_layers` decoder layers; the serving thread starts at once.
  static absl::StatusOr<std::unique_ptr<LocalRing>> Create(ExpertExecutor* executor,
                                                           const RingCapacity& capacity,
                                                           int32_t num_layers);
  ~LocalRing() override;

  absl::Status AttachAll() override;  // a fresh region and thread after Detach
  int count() const override { return 1; }
  RingRegion* region(int) override { return region_.get(); }
  RingProducer* producer(int) override { return producer_.get(); }
  absl::Status CheckAlive(int) override;
  void Detach(int) override;
  uint64_t generation() const override { return generation_; }
  absl::Duration call_timeout() const override { return absl::Minutes(5); }
  void SetReleaseHook(std::function<void(RingRegion*)> hook) override {
    release_hook_ = std::move(hook);
  }
  // Time the executor has spent on this ring's requests so far, in ms.
  double busy_ms() const { return busy_ns_.load(std::memory_order_relaxed) / 1e6; }

 private:
  LocalRing(ExpertExecutor* executor, const RingCapacity& capacity, int32_t num_layers,
            std::vector<int> cpus)
      : executor_(executor), capacity_(capacity), num_layers_(num_layers), cpus_(std::move(cpus)) {}
  void Serve();  // the serving thread

  ExpertExecutor* executor_;
  RingCapacity capacity_;
  int32_t num_layers_;
  std::vector<int> cpus_;  // the OpenMP team's CPUs (empty: not pinned)
  std::unique_ptr<RingRegion> region_;
  std::unique_ptr<RingProducer> producer_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> broken_{false};  // the consumer met a broken ring and stopped
  std::atomic<int64_t> busy_ns_{0};
  uint64_t generation_ = 0;
  std::function<void(RingRegion*)> release_hook_;
};

}  // namespace tandem
