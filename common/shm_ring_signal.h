// Sequence-number signals in shared memory: one 64-bit sequence word plus one 32-bit futex word
// (the `seq` / `futex` pair of RingRequestLine and RingResponseLine). One side publishes, the
// other waits; each pair has exactly one publishing thread and one waiting thread.
//
// Fast path: the publisher stores the sequence number and reads the futex word (no system call
// unless the waiter sleeps); the waiter spins on the sequence word with a pause instruction. Only
// after `RingWaitOptions::spin` does the waiter flag the futex word and sleep in FUTEX_WAIT, for
// at most `liveness_interval` at a time, calling its liveness check between sleeps.
//
// Lost wake-ups are impossible: the waiter stores futex = 1 and then re-reads seq; the publisher
// stores seq and then reads futex (all four sequentially consistent), so at least one of them
// sees the other. A publisher that sees 1 stores 0 before FUTEX_WAKE, so a waiter that has not
// yet entered FUTEX_WAIT(futex, 1) returns at once and re-checks. Futexes are process-shared
// (no FUTEX_PRIVATE_FLAG): the two processes map the same object at different addresses.
//
// A peer that writes garbage can make a wait spin or wake early, never hang past its timeout or
// touch memory outside the two words.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/time/time.h"
#include "common/status.h"

namespace tandem {

// Returns OK while the peer may still answer; any error ends the wait and is returned as is
// (typically Unavailable: "worker 1 (pid 123) exited with signal 9"). Called on the waiting
// thread, at most every `liveness_interval`, and only once the spin phase is over.
using LivenessCheck = std::function<absl::Status()>;

struct RingWaitOptions {
  // Busy-wait this long (pause instruction, no system call) before sleeping on the futex.
  absl::Duration spin = absl::Microseconds(50);
  // Longest single futex sleep; the liveness check runs at least this often while sleeping.
  absl::Duration liveness_interval = absl::Milliseconds(2);
};

// How a consumer whose producer cannot wake it (a GPU) waits instead: spin longer, sleep in short
// slices. Announced with the ring (WorkerControl.AttachRing); 0 keeps the consumer's default.
struct RingPolling {
  uint32_t spin_us = 0;
  uint32_t max_sleep_us = 0;
};
// `base` adjusted by `polling`, each value clamped to [10 us, 20 ms].
RingWaitOptions ApplyPolling(RingWaitOptions base, const RingPolling& polling);

// Slow-path counters, for benchmarks and tests (the fast path makes no system call).
struct RingWaitCounters {
  uint64_t sleeps = 0;  // FUTEX_WAIT calls
  uint64_t wakes = 0;   // FUTEX_WAKE calls
};

// Stores `value` into *seq and wakes the waiter if it flagged *futex. Everything the caller
// wrote before this call is visible to a waiter that reads `value` (release semantics).
void PublishSeq(uint64_t* seq, uint32_t* futex, uint64_t value, RingWaitCounters* counters);

// Waits until *seq differs from `stale` and returns the value read (acquire semantics: what the
// publisher wrote before publishing it is visible). The caller judges the value. Errors:
// DeadlineExceeded after `timeout` (zero: one check after a short spin; absl::InfiniteDuration()
// waits forever); the liveness check's own error as soon as it reports one.
absl::StatusOr<uint64_t> WaitSeqChange(uint64_t* seq, uint32_t* futex, uint64_t stale,
                                       absl::Duration timeout, const RingWaitOptions& options,
                                       const LivenessCheck& still_alive,
                                       RingWaitCounters* counters);

// One relaxed atomic load, so a value validated once is never fetched again from shared memory.
template <typename T>
T LoadOnce(const T& shared) {
  return __atomic_load_n(&shared, __ATOMIC_RELAXED);
}

}  // namespace tandem
