// The GPU's side of the worker rings (DESIGN.md, "GPU handoff"): every worker's ring region is
// registered with CUDA (cudaHostRegister, mapped), so for each MoE call the GPU writes hidden
// states, expert ids and routing weights straight into the slots, publishes the request from a
// kernel, waits for the workers on the stream, and sums their partial results straight out of the
// slots. Nothing on the host runs per call, so a whole decode step, waits included, can be
// captured as one CUDA graph and replayed.
//
// Waiting, two ways (--ring-wait):
//   memop      a stream memory operation (cuStreamWaitValue32) on the slot's done flag, which
//              the worker sets after answering; the host only watches for dead workers.
//   host-func  a host function (cudaLaunchHostFunc) that waits for the response sequence number
//              on the ring's futex, with the worker liveness check.
// A GPU cannot FUTEX_WAKE a sleeping worker, so the rings are attached with polling hints
// (kRingPolling) and workers spin between requests.
//
// A step: BeginStep(calls) (host), then per call EnqueueSubmit / EnqueueCollect (stream, or into a
// graph being captured), then FinishStep(event) (host). Call i of a step always uses slot
// (1 + i) % depth of each ring: BeginStep pads a ring with empty requests when needed, so
// addresses captured in a graph hold on every replay; sequence numbers come from a host-mapped
// control block written by BeginStep. Any failure (a dead worker, a timeout, a worker's error)
// fails FinishStep with the worker named and detaches every ring; the next step re-attaches.
// Engine thread only (host functions run on CUDA's callback thread while the engine waits).
#pragma once

#include <cuda_runtime_api.h>

#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/shm_ring.h"
#include "coordinator/expert_executor.h"
#include "kernels/cuda/ring_kernels.h"

namespace tandem::cuda {

enum class RingWait { kMemOp, kHostFunction };
absl::StatusOr<RingWait> ParseRingWait(const std::string& name);  // "memop" | "host-func"
const char* RingWaitName(RingWait wait);

// How workers poll rings the GPU publishes into.
inline constexpr RingPolling kRingPolling{/*spin_us=*/5000, /*max_sleep_us=*/50};

class RingHandoff {
 public:
  // `pad_layer`: a MoE layer, for the empty requests that align the rings.
  static absl::StatusOr<std::unique_ptr<RingHandoff>> Create(ExpertRings* rings, RingWait wait,
                                                             int32_t pad_layer,
                                                             cudaStream_t stream);
  ~RingHandoff();
  RingHandoff(const RingHandoff&) = delete;
  RingHandoff& operator=(const RingHandoff&) = delete;

  // The most tokens one call carries (the rings' capacity).
  int64_t max_tokens() const { return max_tokens_; }
  RingWait wait() const { return wait_; }
  // Changes whenever ring addresses change; graphs captured before must be captured again.
  uint64_t generation() const { return generation_; }

  // Prepares a step of `calls` calls per worker (see the header comment).
  absl::Status BeginStep(int64_t calls);
  // Call `index` of the step: hidden [T x hidden], ids / weights [T x top_k] (device) into every
  // worker's slot, then the request is published.
  absl::Status EnqueueSubmit(int64_t index, int32_t layer, int64_t num_tokens, int64_t top_k,
                             const float* hidden, const int32_t* ids, const float* weights);
  // Waits for every worker's answer to call `index`; out [T x hidden] = the sum of their parts.
  absl::Status EnqueueCollect(int64_t index, int64_t num_tokens, float* out);
  // Waits for `done` (recorded after the step's last collect) while watching the workers, then
  // judges every answer. Must follow every successful BeginStep, also when enqueueing failed
  // (`enqueue_status`, returned after the rings are detached); `done` must then be recorded
  // after whatever was enqueued.
  absl::Status FinishStep(cudaEvent_t done, const absl::Status& enqueue_status = absl::OkStatus());

 private:
  struct Registered {
    RingRegion* region = nullptr;
    uint8_t* device_base = nullptr;
  };
  struct HostWait {  // the argument of one host-function wait (stable address for graphs)
    RingHandoff* self;
    int64_t index;
  };

  RingHandoff(ExpertRings* rings, RingWait wait, int32_t pad_layer, cudaStream_t stream)
      : rings_(rings), wait_(wait), pad_layer_(pad_layer), stream_(stream) {}
  absl::Status Register(int w);
  void Release(RingRegion* region);  // the executor's release hook
  absl::Status Align(int w);
  RingSlots SlotsFor(int64_t index) const;
  static void CUDART_CB HostWaitEntry(void* arg);
  void WaitForAnswers(int64_t index);  // on CUDA's callback thread
  void ReleaseWaits(int w);            // sets worker w's done flags so the GPU stops waiting
  void DetachAll();
  std::string DescribeState() const;  // sequence numbers and flags of every slot, for logs

  ExpertRings* rings_;
  RingWait wait_;
  int32_t pad_layer_;
  cudaStream_t stream_;
  int64_t max_tokens_ = 0;
  uint32_t depth_ = 0;
  RingSlotLayout layout_;
  std::vector<Registered> registered_;
  uint64_t generation_ = 0;
  RingStepControl* control_ = nullptr;         // host-mapped
  RingStepControl* control_device_ = nullptr;  // its device address
  int64_t calls_ = 0;                          // of the step in progress (0: none)
  std::deque<HostWait> host_waits_;
  std::mutex host_error_mu_;  // host_error_ is written on CUDA's callback thread
  absl::Status host_error_;  // the first error a host-function wait met in this step
  void* wait_value_ = nullptr;  // the driver's cuStreamWaitValue32
};

}  // namespace tandem::cuda
