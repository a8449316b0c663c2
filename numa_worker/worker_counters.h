// The worker's cumulative counters, reported by WorkerControl.Stats. Written by the ring loop
// thread, read by gRPC threads: relaxed atomics (each value is individually exact; a Stats reply
// may mix values from just before and just after one request).
#pragma once

#include <atomic>
#include <cstdint>

namespace tandem {

struct WorkerCounters {
  std::atomic<uint64_t> requests{0};           // ring requests answered OK
  std::atomic<uint64_t> tokens{0};             // tokens of those requests
  std::atomic<uint64_t> busy_ns{0};            // time spent computing them (ExpertShard::Run)
  std::atomic<uint64_t> expert_bytes_read{0};  // per request: slice bytes of each expert used
  std::atomic<uint64_t> errors{0};             // requests answered with an error + broken rings
};

}  // namespace tandem
