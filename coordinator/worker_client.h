// The coordinator's handle on one NUMA worker process: its gRPC control channel
// (WorkerControl: Hello, LoadShard, AttachRing, Stats, Shutdown) and the shared-memory ring this
// side creates for it. Used by one thread at a time (the engine thread, or start-up).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/shm_ring.h"
#include "common/status.h"
#include "coordinator/expert_executor.h"
#include "numa_worker/expert_shard.h"
#include "tandem/v1/worker.grpc.pb.h"

namespace tandem {

struct WorkerEndpoint {
  int index = 0;             // position among the coordinator's workers
  std::string address;       // gRPC target: unix:/path or host:port
  pid_t pid = 0;             // a child process this coordinator spawned (0: started elsewhere)
  std::string Name() const;  // "worker 1 (unix:/tmp/...)", used in every error message
};

struct ShardRequest {
  std::string model_dir;
  std::string config_path;  // empty: model_dir/config.json
  ShardPlan plan;
  std::string fingerprint;  // the coordinator's CheckpointFingerprint
  ExpertFormat format;      // --expert-dtype: every worker packs its experts in it
  // A synthetic model instead of model_dir (tandem bench --synthetic): preset, layers, seed.
  std::string synthetic_preset;
  int64_t synthetic_layers = 0;
  uint64_t synthetic_seed = 0;
};

class WorkerClient {
 public:
  // Connects (waiting up to `timeout` for the worker to listen) and says Hello; a worker of
  // another protocol version is refused with its message.
  static absl::StatusOr<std::unique_ptr<WorkerClient>> Connect(const WorkerEndpoint& endpoint,
                                                               absl::Duration timeout);

  absl::Status LoadShard(const ShardRequest& request, absl::Duration timeout);
  // Creates a ring region of `capacity`, announces it (with how the worker should poll it),
  // unlinks its name once attached.
  absl::Status AttachRing(const RingCapacity& capacity, const RingPolling& polling = {});

  // Publishes one MoE call on the ring; returns its sequence number.
  absl::StatusOr<uint64_t> Submit(const MoeBatch& batch);
  // Waits for request `seq`'s partial result [T x hidden] into `out`. A dead worker is
  // Unavailable (naming it) within the liveness interval; a worker's own error passes through.
  absl::Status Wait(uint64_t seq, float* out, absl::Duration timeout);

  // Unavailable (naming the worker) if its process is gone or its channel broke.
  absl::Status CheckAlive();
  absl::StatusOr<tandem::v1::StatsResponse> Stats();
  absl::Status Shutdown();

  const WorkerEndpoint& endpoint() const { return endpoint_; }
  const tandem::v1::HelloResponse& hello() const { return hello_; }
  // The attached ring (null before AttachRing): for a GPU producer writing into it directly.
  RingRegion* region() { return region_.get(); }
  RingProducer* producer() { return producer_.get(); }

 private:
  explicit WorkerClient(WorkerEndpoint endpoint) : endpoint_(std::move(endpoint)) {}
  absl::Status Annotate(const absl::Status& status) const;  // prefixes the worker's name
  absl::Status LivenessStatus();                            // CheckAlive without the name

  WorkerEndpoint endpoint_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<tandem::v1::WorkerControl::Stub> stub_;
  tandem::v1::HelloResponse hello_;
  std::unique_ptr<RingRegion> region_;
  std::unique_ptr<RingProducer> producer_;
};

}  // namespace tandem
