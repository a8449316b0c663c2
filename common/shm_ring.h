// The two ends of a shared-memory ring (region: shm_ring_region.h, bytes: shm_ring_layout.h).
//
// Protocol. Request n (n = 1, 2, ...) goes into slot n % depth. The producer (coordinator) copies
// the payload and the request header into the slot, then publishes request_seq = n (release) and
// wakes the consumer only if it sleeps. The consumer (worker) waits until the slot's request_seq
// leaves n - depth (the slot's previous request), requires it to be exactly n, copies and
// validates the header, computes, writes the result area, then publishes response_seq = n with a
// status. The producer waits for response_seq = n, reads the status and copies the result out.
// A slot is reused for n + depth only after the producer collected n, so up to `depth` requests
// are in flight (e.g. a layer's deferred request and the next layer's immediate one), answered in
// any order. No locks and no system calls on the fast path (shm_ring_signal.h).
//
// Trust. Each side validates everything it reads from shared memory: a sequence number other
// than the expected one, a header out of capacity or of the caller's layer range, unknown flags,
// or a status code that is not an absl::StatusCode is an error (DataLoss / InvalidArgument),
// never a crash, an out-of-bounds access or a hang. Payload contents (floats, expert ids) are
// the caller's to check; a consumer must read each expert id once into a local before using it
// as an index, since a misbehaving producer can change it at any time.
//
// Threads. One RingProducer per region, used by one thread at a time (the coordinator's engine
// thread); one RingConsumer per region, used by one thread at a time (the worker's ring loop).
// The region must outlive both. Both assume a fresh region: a restarted worker gets a new one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/shm_ring_region.h"
#include "common/shm_ring_signal.h"
#include "common/status.h"

namespace tandem {

// The request and response lines of slot `slot` (< depth) of `region`.
RingRequestLine* RequestLine(const RingRegion& region, uint32_t slot);
RingResponseLine* ResponseLine(const RingRegion& region, uint32_t slot);

// One MoE call as the producer submits it (the fields of coordinator/MoeBatch plus flags).
struct RingRequest {
  int32_t layer = 0;
  int64_t num_tokens = 0;               // T, in [0, max_tokens]
  int64_t top_k = 0;                    // k, in [0, max_top_k]
  const float* hidden = nullptr;        // [T x hidden_size]; may be null when T = 0
  const int32_t* expert_ids = nullptr;  // [T x k]
  const float* weights = nullptr;       // [T x k] routing weights
  uint32_t flags = 0;                   // kRingFlag*
};

// A request as the consumer sees it. The header fields are this process's validated copies;
// the pointers point into the slot and stay valid until Complete(seq). hidden / expert_ids /
// weights are read-only, `result` [num_tokens x hidden_size] must be fully written before
// Complete(seq, OkStatus()).
struct RingRequestView {
  uint64_t seq = 0;
  int32_t layer = 0;
  int64_t num_tokens = 0;
  int64_t top_k = 0;
  uint32_t flags = 0;
  const float* hidden = nullptr;
  const int32_t* expert_ids = nullptr;
  const float* weights = nullptr;
  float* result = nullptr;
};

// Coordinator side.
class RingProducer {
 public:
  explicit RingProducer(RingRegion* region, RingWaitOptions options = {});

  // Copies `request` into the next slot and publishes it; returns its sequence number.
  // InvalidArgument if the request exceeds the capacity (or a needed pointer is null);
  // FailedPrecondition if the slot still holds a request whose result was not collected
  // (`depth` requests outstanding).
  absl::StatusOr<uint64_t> Submit(const RingRequest& request);

  // Waits for the response to `seq` and copies its [num_tokens x hidden_size] result to `out`
  // (may be null when num_tokens is 0). On success or on an error reply the request is
  // collected and its slot free again; the worker's error comes back with its code and message.
  // DeadlineExceeded after `timeout`, or the error of `still_alive` (checked every
  // liveness_interval once spinning stops): the request stays outstanding and may be waited
  // for again. DataLoss if the slot shows a response sequence number other than seq or its
  // predecessor, or an invalid status; FailedPrecondition if `seq` is not outstanding.
  absl::Status WaitResult(uint64_t seq, float* out, absl::Duration timeout,
                          const LivenessCheck& still_alive = nullptr);

  // Hands the next `count` sequence numbers to an external producer (the GPU: it writes the
  // requests into their slots, publishes and collects them itself, in order); returns the first.
  // Needs nothing outstanding. The ring stays in step only if all `count` requests are published
  // and answered; after an external failure the region must be abandoned.
  absl::StatusOr<uint64_t> ReserveExternal(int64_t count);

  int outstanding() const;  // submitted, not yet collected
  uint64_t last_submitted() const { return next_seq_ - 1; }
  const RingWaitCounters& counters() const { return counters_; }
  RingRegion* region() const { return region_; }

 private:
  struct SlotState {
    uint64_t seq = 0;  // last request submitted in this slot (0: never used)
    int64_t num_tokens = 0;
    bool collected = true;
  };

  RingRegion* region_;
  RingWaitOptions options_;
  uint64_t next_seq_ = 1;
  std::vector<SlotState> slots_;
  RingWaitCounters counters_;
};

// Layers a consumer accepts: [layer_begin, layer_end).
struct RingLayerRange {
  int32_t layer_begin = 0;
  int32_t layer_end = INT32_MAX;
};

// Worker side.
class RingConsumer {
 public:
  RingConsumer(RingRegion* region, RingLayerRange layers, RingWaitOptions options = {});

  // Waits for the next request (sequence numbers strictly in order) and validates it.
  // DeadlineExceeded / the liveness check's error as for RingProducer::WaitResult (call again).
  // DataLoss if the slot holds an unexpected sequence number: the producer is broken, the ring
  // is unusable, and every later call fails the same way. If the sequence number is right but
  // the header is not (too many tokens, top_k above capacity, layer out of range, unknown
  // flags), the request is answered with that error (so the producer's WaitResult returns it),
  // skipped, and the error returned here. FailedPrecondition if `depth` requests are already
  // handed out and not completed.
  absl::StatusOr<RingRequestView> WaitRequest(absl::Duration timeout,
                                              const LivenessCheck& still_alive = nullptr);

  // Answers request `seq` (handed out by WaitRequest, not yet completed): OK once the result
  // area holds the output, or an error whose code and message (truncated to
  // kRingErrorTextBytes) reach the producer. FailedPrecondition if `seq` is not handed out.
  absl::Status Complete(uint64_t seq, const absl::Status& status);

  uint64_t next_expected() const { return next_seq_; }
  const RingWaitCounters& counters() const { return counters_; }
  RingRegion* region() const { return region_; }

 private:
  void Publish(uint32_t slot, uint64_t seq, const absl::Status& status);

  RingRegion* region_;
  RingLayerRange layers_;
  RingWaitOptions options_;
  uint64_t next_seq_ = 1;
  std::vector<uint64_t> handed_out_;  // per slot: seq handed out and not completed, or 0
  RingWaitCounters counters_;
};

}  // namespace tandem
