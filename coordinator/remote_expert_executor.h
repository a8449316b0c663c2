// ExpertExecutor over NUMA worker processes: each MoE call is published on every worker's ring,
// each worker computes its tensor-parallel slice, and the partial outputs are summed here.
// A worker that dies fails the call with Unavailable naming it; before the next call the
// executor re-attaches it (reconnect, Hello, LoadShard, new ring) once it listens again, so a
// restarted worker serves the next request. Engine thread only.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "coordinator/expert_executor.h"
#include "coordinator/worker_client.h"

namespace tandem {

struct RemoteExecutorOptions {
  ShardRequest shard;                 // model dir, config, fingerprint (plan set per worker)
  RingCapacity ring;                  // capacity of every worker's ring
  absl::Duration connect_timeout = absl::Seconds(30);
  absl::Duration load_timeout = absl::Minutes(30);
  absl::Duration call_timeout = absl::Minutes(5);   // one MoE call, when the worker lives
  absl::Duration reattach_timeout = absl::Seconds(2);
  RingPolling polling;  // set when a GPU publishes into the rings (it cannot wake the workers)
};

class RemoteExpertExecutor : public ExpertExecutor, public ExpertRings {
 public:
  // Connects to every endpoint and brings it up (Hello, LoadShard of its slice, AttachRing).
  static absl::StatusOr<std::unique_ptr<RemoteExpertExecutor>> Create(
      std::vector<WorkerEndpoint> endpoints, RemoteExecutorOptions options);

  absl::Status Run(const MoeBatch& batch, float* out) override;
  std::string Describe() const override;
  ExpertRings* rings() override { return this; }

  // ExpertRings.
  absl::Status AttachAll() override;
  int count() const override { return static_cast<int>(clients_.size()); }
  RingRegion* region(int i) override { return clients_[i] ? clients_[i]->region() : nullptr; }
  RingProducer* producer(int i) override {
    return clients_[i] ? clients_[i]->producer() : nullptr;
  }
  absl::Status CheckAlive(int i) override;
  void Detach(int i) override;
  uint64_t generation() const override { return generation_; }
  absl::Duration call_timeout() const override { return options_.call_timeout; }
  void SetReleaseHook(std::function<void(RingRegion*)> hook) override {
    release_hook_ = std::move(hook);
  }
  ~RemoteExpertExecutor() override;

  // Where the worker processes are; a supervisor updates it after restarting one.
  void UpdateEndpoint(const WorkerEndpoint& endpoint);
  std::vector<WorkerClient*> clients();

 private:
  explicit RemoteExpertExecutor(RemoteExecutorOptions options) : options_(std::move(options)) {}
  absl::Status RunSlice(const MoeBatch& batch, float* out);  // batch fits one ring slot
  absl::StatusOr<std::unique_ptr<WorkerClient>> BringUp(const WorkerEndpoint& endpoint, int count,
                                                        absl::Duration connect_timeout);

  RemoteExecutorOptions options_;
  std::vector<WorkerEndpoint> endpoints_;
  std::vector<std::unique_ptr<WorkerClient>> clients_;  // null while a worker is down
  std::vector<float> partial_;
  uint64_t generation_ = 0;
  std::function<void(RingRegion*)> release_hook_;
};

}  // namespace tandem
