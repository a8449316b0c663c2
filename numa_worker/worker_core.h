// What a NUMA worker does, without the transport: the WorkerControl operations on proto messages,
// returning absl::Status (worker_grpc_service.h maps them 1:1 onto gRPC). Tests drive it
// directly, without sockets.
//
//   Hello      refuses another kWorkerProtocolVersion (FailedPrecondition naming both);
//              returns worker id, pid, topology, ISA.
//   LoadShard  opens the checkpoint, refuses a fingerprint other than a non-empty announced one
//              (FailedPrecondition naming both and the path), an expert_dtype other than
//              "bf16" / "" (InvalidArgument), a bad shard spec (InvalidArgument); loads only
//              this shard's slice of every routed expert and drops the checkpoint mapping.
//              Once loaded, the same checkpoint + shard again is a no-op (a restarted coordinator
//              re-sends it); anything else is FailedPrecondition (restart the worker).
//   AttachRing FailedPrecondition before LoadShard. Opens the announced region (its errors pass
//              through: NotFound, FailedPrecondition for magic / layout version, InvalidArgument
//              for sizes), checks it fits the model (hidden size equal, max_top_k >= the model's
//              top-k: InvalidArgument), then stops the ring being served, if any, and serves the
//              new one. A refused region leaves the current ring as it was.
//   Stats      the counters (worker_counters.h).
//   StopServing stops the ring loop for good (shutdown): later AttachRing calls are Unavailable.
//
// Threads: every method may be called concurrently from any thread (gRPC handler threads).
// LoadShard calls are serialized; Hello and Stats never wait for a load.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/model_config.h"
#include "kernels/cpu/isa.h"
#include "numa_worker/cpu_binding.h"
#include "numa_worker/expert_shard.h"
#include "numa_worker/ring_loop.h"
#include "numa_worker/worker_counters.h"
#include "tandem/v1/worker.pb.h"

namespace tandem {

struct WorkerIdentity {
  std::string worker_id;  // e.g. "node0"; appears in logs as "[worker node0]"
  CpuBinding binding;
  // The expert kernel, resolved at start-up (ResolveCpuKernel); reported by Hello as "isa".
  CpuKernel cpu_kernel = CpuKernel::kReference;
  MoeSchedule schedule = MoeSchedule::kDynamic;  // --schedule
};

class WorkerCore {
 public:
  explicit WorkerCore(WorkerIdentity identity, RingWaitOptions ring_wait = {});
  ~WorkerCore();  // stops the ring loop

  absl::StatusOr<v1::HelloResponse> Hello(const v1::HelloRequest& request) const;
  absl::StatusOr<v1::LoadShardResponse> LoadShard(const v1::LoadShardRequest& request);
  absl::Status AttachRing(const v1::AttachRingRequest& request);
  v1::StatsResponse Stats() const;
  void StopServing();

  // Whether a ring is attached and its loop still serving (tests, diagnostics).
  bool serving_ring() const;

 private:
  struct Loaded {
    std::string checkpoint_dir;
    std::string fingerprint;
    ShardPlan plan;
    ExpertFormat format;
    ModelConfig config;
    std::unique_ptr<ExpertShard> shard;
    RingLoopConfig loop_template;  // shard / config / byte accounting for every RingLoop
    v1::LoadShardResponse response;
  };

  const WorkerIdentity identity_;
  const RingWaitOptions ring_wait_;
  WorkerCounters counters_;
  absl::Mutex load_mu_;  // serializes LoadShard (held while reading the checkpoint)
  mutable absl::Mutex mu_;
  // Set once by LoadShard and never replaced: the ring loop reads the shard without a lock.
  std::unique_ptr<Loaded> loaded_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<RingLoop> loop_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;  // StopServing was called: no new ring
};

}  // namespace tandem
