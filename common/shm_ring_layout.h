// Byte layout of a Tandem shared-memory ring (layout version 2): the region one coordinator and
// one NUMA worker share to exchange MoE calls. Pure data and arithmetic; no system calls.
//
//   offset 0                 RingRegionHeader, padded to kRingHeaderBytes (one page)
//   offset kRingHeaderBytes  slot 0, slot 1, ... slot depth-1, each `slot_stride` bytes
//
// One slot (every area starts on a cache line; the stride is a multiple of a page):
//   request_line   RingRequestLine: request sequence number + futex word + request header
//   response_line  RingResponseLine: response sequence number + futex word + reply status
//   error_text     kRingErrorTextBytes of the reply's error message (not NUL-terminated)
//   hidden         [max_tokens x hidden_size] f32, the request's [num_tokens x hidden] packed
//   expert_ids     [max_tokens x max_top_k] i32, the request's [num_tokens x top_k] packed
//   weights        [max_tokens x max_top_k] f32, packed like expert_ids
//   result         [max_tokens x hidden_size] f32, the reply's [num_tokens x hidden] packed
//
// The request header shares the request sequence number's cache line, and the reply status the
// response sequence number's, so each direction of an empty round trip moves one line. Request
// and response lines are separate: a spinning reader never steals the line its peer writes.
// The seq/futex words are accessed only through atomics (shm_ring_signal.h); everything else is
// plain memory ordered by them. All integers are little-endian host order: both processes run on
// the same machine. Anything read from a mapping the other process can write is validated by the
// reader (shm_ring_region.cc for the header, shm_ring.cc for the slots).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace tandem {

inline constexpr uint64_t kRingMagic = 0x54414E44454D5247ULL;  // "TANDEMRG"
inline constexpr uint32_t kRingLayoutVersion = 2;
inline constexpr uint64_t kRingCacheLine = 64;
inline constexpr uint64_t kRingHeaderBytes = 4096;  // the header page; slot 0 starts here
inline constexpr uint64_t kRingSlotAlign = 4096;    // slot stride is a multiple of this
inline constexpr uint64_t kRingErrorTextBytes = 512;

// Capacity limits accepted by ValidateCapacity (keep every size computation far from overflow).
inline constexpr uint32_t kRingMinDepth = 2;
inline constexpr uint32_t kRingMaxDepth = 64;
inline constexpr uint32_t kRingMaxTokens = 1u << 16;
inline constexpr uint32_t kRingMaxHidden = 1u << 16;
inline constexpr uint32_t kRingMaxTopK = 256;

// Activation element type of the hidden and result areas. Only f32 exists today (results stay
// exact); bf16 is the planned second one.
enum class RingDType : uint32_t { kF32 = 1 };

// Request flags (RingRequestLine::flags). Unknown bits are rejected by the consumer.
inline constexpr uint32_t kRingFlagDeferred = 1u << 0;  // the deferred half of a layer's experts
inline constexpr uint32_t kRingKnownFlags = kRingFlagDeferred;

// What the region can carry. Chosen by the coordinator, fixed for the life of the region.
struct RingCapacity {
  uint32_t depth = 2;        // slots, in [kRingMinDepth, kRingMaxDepth]
  uint32_t max_tokens = 0;   // tokens per request, >= 1
  uint32_t hidden_size = 0;  // model hidden size, >= 1
  uint32_t max_top_k = 0;    // experts per token per request, >= 1
  RingDType dtype = RingDType::kF32;

  bool operator==(const RingCapacity&) const = default;
};

// InvalidArgument naming the bad field unless every field is within the limits above.
absl::Status ValidateCapacity(const RingCapacity& capacity);

// Byte offsets inside one slot, and its stride. Derived only from a RingCapacity.
struct RingSlotLayout {
  uint64_t request_line = 0;
  uint64_t response_line = 0;
  uint64_t error_text = 0;
  uint64_t hidden = 0;
  uint64_t expert_ids = 0;
  uint64_t weights = 0;
  uint64_t result = 0;
  uint64_t stride = 0;

  bool operator==(const RingSlotLayout&) const = default;
};

// The slot layout of a valid capacity (ValidateCapacity first; errors pass through).
absl::StatusOr<RingSlotLayout> ComputeSlotLayout(const RingCapacity& capacity);
// Total region bytes: the header page plus `depth` slots.
uint64_t RingRegionBytes(const RingCapacity& capacity, const RingSlotLayout& layout);

// How a region is announced to the worker (over gRPC, WorkerControl.AttachRing): the worker
// opens `name` and refuses the region unless every field matches what it finds there.
struct RingSpec {
  std::string name;   // POSIX shm name: "/tandem-<pid>-<tag>-<random hex>"
  uint64_t size = 0;  // bytes of the region
  uint32_t layout_version = kRingLayoutVersion;
  uint64_t magic = kRingMagic;
  RingCapacity capacity;
};

// ---------------------------------------------------------------------------------------------
// Structures as they lie in shared memory. Their layout is part of kRingLayoutVersion: change
// any of them and bump the version.

struct RingRegionHeader {
  uint64_t magic;           // kRingMagic, written last by the creator
  uint32_t layout_version;  // kRingLayoutVersion
  uint32_t header_size;     // kRingHeaderBytes: offset of slot 0
  uint64_t region_size;     // bytes of the whole region
  uint64_t slot_stride;     // RingSlotLayout::stride
  uint32_t depth;
  uint32_t dtype;  // RingDType
  uint32_t max_tokens;
  uint32_t hidden_size;
  uint32_t max_top_k;
  uint32_t reserved0;
  uint64_t hidden_offset;  // RingSlotLayout offsets, so a reader can cross-check its own
  uint64_t expert_ids_offset;
  uint64_t weights_offset;
  uint64_t result_offset;
  uint64_t creator_pid;  // informational
};
static_assert(sizeof(RingRegionHeader) == 96);
static_assert(sizeof(RingRegionHeader) <= kRingHeaderBytes);

// Written by the producer (coordinator); `futex` is also written by the consumer while it sleeps.
struct alignas(kRingCacheLine) RingRequestLine {
  uint64_t seq;    // atomic: the last request published in this slot (0: none yet)
  uint32_t futex;  // atomic: 1 while the consumer sleeps on it (or is about to), else 0
  uint32_t flags;  // kRingFlag*
  int32_t layer;
  uint32_t num_tokens;
  uint32_t top_k;
  uint32_t reserved[9];
};
static_assert(sizeof(RingRequestLine) == kRingCacheLine);

// Written by the consumer (worker); `futex` is also written by the producer while it sleeps.
struct alignas(kRingCacheLine) RingResponseLine {
  uint64_t seq;         // atomic: the last request answered in this slot (0: none yet)
  uint32_t futex;       // atomic: 1 while the producer sleeps on it (or is about to), else 0
  int32_t status_code;  // absl::StatusCode of the reply; 0 = OK and `result` holds the output
  uint32_t error_len;   // bytes of error_text used, <= kRingErrorTextBytes
  // Atomic: set to 1 by the consumer right after it publishes `seq`, reset to 0 by a GPU producer
  // before it publishes the next request of the slot. A GPU cannot compare against a sequence
  // number that changes with every replay of a CUDA graph, but it can wait for this flag with a
  // stream memory operation (coordinator/cuda/ring_handoff.h).
  uint32_t done_flag;
  uint32_t reserved[10];
};
static_assert(sizeof(RingResponseLine) == kRingCacheLine);

}  // namespace tandem
