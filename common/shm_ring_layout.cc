#include "common/shm_ring_layout.h"

namespace tandem {
namespace {

constexpr uint64_t RoundUp(uint64_t value, uint64_t align) {
  return (value + align - 1) / align * align;
}

absl::Status CheckRange(const char* field, uint64_t value, uint64_t lo, uint64_t hi) {
  if (value < lo || value > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring capacity: ", field, " = ", value, " is outside [", lo, ", ", hi, "]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateCapacity(const RingCapacity& capacity) {
  TANDEM_RETURN_IF_ERROR(CheckRange("depth", capacity.depth, kRingMinDepth, kRingMaxDepth));
  TANDEM_RETURN_IF_ERROR(CheckRange("max_tokens", capacity.max_tokens, 1, kRingMaxTokens));
  TANDEM_RETURN_IF_ERROR(CheckRange("hidden_size", capacity.hidden_size, 1, kRingMaxHidden));
  TANDEM_RETURN_IF_ERROR(CheckRange("max_top_k", capacity.max_top_k, 1, kRingMaxTopK));
  if (capacity.dtype != RingDType::kF32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ring capacity: dtype ", static_cast<uint32_t>(capacity.dtype), " is not supported"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RingSlotLayout> ComputeSlotLayout(const RingCapacity& capacity) {
  TANDEM_RETURN_IF_ERROR(ValidateCapacity(capacity));
  // Within the limits every product below is < 2^40: no overflow.
  const uint64_t tokens = capacity.max_tokens;
  const uint64_t activations = tokens * capacity.hidden_size * sizeof(float);
  const uint64_t routing = tokens * capacity.max_top_k * sizeof(int32_t);
  RingSlotLayout layout;
  uint64_t offset = 0;
  auto place = [&](uint64_t bytes) {
    const uint64_t at = offset;
    offset = RoundUp(offset + bytes, kRingCacheLine);
    return at;
  };
  layout.request_line = place(sizeof(RingRequestLine));
  layout.response_line = place(sizeof(RingResponseLine));
  layout.error_text = place(kRingErrorTextBytes);
  layout.hidden = place(activations);
  layout.expert_ids = place(routing);
  layout.weights = place(routing);
  layout.result = place(activations);
  layout.stride = RoundUp(offset, kRingSlotAlign);
  return layout;
}

uint64_t RingRegionBytes(const RingCapacity& capacity, const RingSlotLayout& layout) {
  return kRingHeaderBytes + static_cast<uint64_t>(capacity.depth) * layout.stride;
}

}  // namespace tandem
