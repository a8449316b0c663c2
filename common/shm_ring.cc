#include "common/shm_ring.h"

#include <algorithm>
#include <cstring>

namespace tandem {
namespace {

// The value a slot's sequence word holds before request / response `seq` is published there:
// the previous request of the slot, or 0 while the ring has not wrapped yet.
uint64_t Predecessor(uint64_t seq, uint32_t depth) { return seq > depth ? seq - depth : 0; }

// Puts the ring and request in front of a wait error, keeping its code.
absl::Status WaitError(const absl::Status& status, const RingRegion& region, const char* what,
                       uint64_t seq) {
  return absl::Status(status.code(), absl::StrCat("ring ", region.name(), ": ", what, " ", seq,
                                                  ": ", status.message()));
}

}  // namespace

RingRequestLine* RequestLine(const RingRegion& region, uint32_t slot) {
  return reinterpret_cast<RingRequestLine*>(region.slot(slot) + region.layout().request_line);
}

RingResponseLine* ResponseLine(const RingRegion& region, uint32_t slot) {
  return reinterpret_cast<RingResponseLine*>(region.slot(slot) + region.layout().response_line);
}

// ---------------------------------------------------------------------------------------------
// RingProducer

RingProducer::RingProducer(RingRegion* region, RingWaitOptions options)
    : region_(region), options_(options), slots_(region->capacity().depth) {}

int RingProducer::outstanding() const {
  return static_cast<int>(
      std::count_if(slots_.begin(), slots_.end(), [](const SlotState& s) { return !s.collected; }));
}

absl::StatusOr<uint64_t> RingProducer::Submit(const RingRequest& request) {
  const RingCapacity& cap = region_->capacity();
  const RingSlotLayout& layout = region_->layout();
  auto invalid = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("ring ", region_->name(), ": request ", what));
  };
  if (request.num_tokens < 0 || request.num_tokens > cap.max_tokens) {
    return invalid(
        absl::StrCat("num_tokens ", request.num_tokens, " outside [0, ", cap.max_tokens, "]"));
  }
  if (request.top_k < 0 || request.top_k > cap.max_top_k) {
    return invalid(absl::StrCat("top_k ", request.top_k, " outside [0, ", cap.max_top_k, "]"));
  }
  if ((request.flags & ~kRingKnownFlags) != 0) {
    return invalid(absl::StrCat("flags 0x", absl::Hex(request.flags), " has unknown bits"));
  }
  const uint64_t tokens = static_cast<uint64_t>(request.num_tokens);
  const uint64_t routing = tokens * static_cast<uint64_t>(request.top_k);
  if ((tokens > 0 && request.hidden == nullptr) ||
      (routing > 0 && (request.expert_ids == nullptr || request.weights == nullptr))) {
    return invalid("payload pointer is null");
  }

  const uint64_t seq = next_seq_;
  const uint32_t slot = static_cast<uint32_t>(seq % cap.depth);
  SlotState& state = slots_[slot];
  if (!state.collected) {
    return absl::FailedPreconditionError(
        absl::StrCat("ring ", region_->name(), ": slot ", slot, " still holds request ", state.seq,
                     " whose result was not collected (depth ", cap.depth, ")"));
  }
  uint8_t* base = region_->slot(slot);
  if (tokens > 0) {
    std::memcpy(base + layout.hidden, request.hidden, tokens * cap.hidden_size * sizeof(float));
  }
  if (routing > 0) {
    std::memcpy(base + layout.expert_ids, request.expert_ids, routing * sizeof(int32_t));
    std::memcpy(base + layout.weights, request.weights, routing * sizeof(float));
  }
  RingRequestLine* line = RequestLine(*region_, slot);
  line->flags = request.flags;
  line->layer = request.layer;
  line->num_tokens = static_cast<uint32_t>(tokens);
  line->top_k = static_cast<uint32_t>(request.top_k);
  state = SlotState{seq, request.num_tokens, false};
  ++next_seq_;
  PublishSeq(&line->seq, &line->futex, seq, &counters_);
  return seq;
}

absl::Status RingProducer::WaitResult(uint64_t seq, float* out, absl::Duration timeout,
                                      const LivenessCheck& still_alive) {
  const RingCapacity& cap = region_->capacity();
  const uint32_t slot = static_cast<uint32_t>(seq % cap.depth);
  SlotState& state = slots_[slot];
  if (seq == 0 || state.seq != seq || state.collected) {
    return absl::FailedPreconditionError(
        absl::StrCat("ring ", region_->name(), ": request ", seq, " is not outstanding"));
  }
  if (state.num_tokens > 0 && out == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring ", region_->name(), ": no output buffer for request ", seq));
  }
  RingResponseLine* line = ResponseLine(*region_, slot);
  absl::StatusOr<uint64_t> seen =
      WaitSeqChange(&line->seq, &line->futex, Predecessor(seq, cap.depth), timeout, options_,
                    still_alive, &counters_);
  if (!seen.ok())
    return WaitError(seen.status(), *region_, "waiting for the response to request", seq);
  if (*seen != seq) {
    return absl::DataLossError(absl::StrCat("ring ", region_->name(), ": slot ", slot,
                                            " holds response sequence number ", *seen,
                                            ", expected ", seq, " (worker broken)"));
  }
  state.collected = true;
  const int32_t code = LoadOnce(line->status_code);
  if (code == 0) {
    if (state.num_tokens > 0) {
      std::memcpy(out, region_->slot(slot) + region_->layout().result,
                  static_cast<uint64_t>(state.num_tokens) * cap.hidden_size * sizeof(float));
    }
    return absl::OkStatus();
  }
  if (code < 1 || code > static_cast<int32_t>(absl::StatusCode::kUnauthenticated)) {
    return absl::DataLossError(absl::StrCat("ring ", region_->name(), ": response to request ", seq,
                                            " has invalid status code ", code));
  }
  const uint64_t len = std::min<uint64_t>(LoadOnce(line->error_len), kRingErrorTextBytes);
  std::string text(len, '\0');
  std::memcpy(text.data(), region_->slot(slot) + region_->layout().error_text, len);
  return absl::Status(static_cast<absl::StatusCode>(code),
                      absl::StrCat("ring ", region_->name(), ": request ", seq, ": ", text));
}

absl::StatusOr<uint64_t> RingProducer::ReserveExternal(int64_t count) {
  if (count < 1) return absl::InvalidArgumentError("ReserveExternal: count must be >= 1");
  if (outstanding() != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ring ", region_->name(), ": ", outstanding(), " request(s) still outstanding"));
  }
  const uint64_t first = next_seq_;
  next_seq_ += static_cast<uint64_t>(count);
  const uint32_t depth = region_->capacity().depth;
  for (uint64_t seq = first; seq < next_seq_; ++seq) slots_[seq % depth] = SlotState{seq, 0, true};
  return first;
}

// ---------------------------------------------------------------------------------------------
// RingConsumer

RingConsumer::RingConsumer(RingRegion* region, RingLayerRange layers, RingWaitOptions options)
    : region_(region),
      layers_(layers),
      options_(options),
      handed_out_(region->capacity().depth, 0) {}

absl::StatusOr<RingRequestView> RingConsumer::WaitRequest(absl::Duration timeout,
                                                          const LivenessCheck& still_alive) {
  const RingCapacity& cap = region_->capacity();
  const uint64_t seq = next_seq_;
  const uint32_t slot = static_cast<uint32_t>(seq % cap.depth);
  if (handed_out_[slot] != 0) {
    return absl::FailedPreconditionError(absl::StrCat("ring ", region_->name(), ": request ",
                                                      handed_out_[slot], " was not completed; ",
                                                      cap.depth, " requests are handed out"));
  }
  RingRequestLine* line = RequestLine(*region_, slot);
  absl::StatusOr<uint64_t> seen =
      WaitSeqChange(&line->seq, &line->futex, Predecessor(seq, cap.depth), timeout, options_,
                    still_alive, &counters_);
  if (!seen.ok()) return WaitError(seen.status(), *region_, "waiting for request", seq);
  if (*seen != seq) {
    return absl::DataLossError(absl::StrCat("ring ", region_->name(), ": slot ", slot,
                                            " holds request sequence number ", *seen, ", expected ",
                                            seq, " (coordinator broken)"));
  }
  ++next_seq_;

  // Read each header field exactly once, then judge the copies.
  RingRequestView view;
  view.seq = seq;
  view.flags = LoadOnce(line->flags);
  view.layer = LoadOnce(line->layer);
  const uint32_t num_tokens = LoadOnce(line->num_tokens);
  const uint32_t top_k = LoadOnce(line->top_k);
  std::string bad;
  if (num_tokens > cap.max_tokens) {
    bad = absl::StrCat("num_tokens ", num_tokens, " exceeds max_tokens ", cap.max_tokens);
  } else if (top_k > cap.max_top_k) {
    bad = absl::StrCat("top_k ", top_k, " exceeds max_top_k ", cap.max_top_k);
  } else if (view.layer < layers_.layer_begin || view.layer >= layers_.layer_end) {
    bad = absl::StrCat("layer ", view.layer, " is outside [", layers_.layer_begin, ", ",
                       layers_.layer_end, ")");
  } else if ((view.flags & ~kRingKnownFlags) != 0) {
    bad = absl::StrCat("flags 0x", absl::Hex(view.flags), " has unknown bits");
  }
  if (!bad.empty()) {
    absl::Status error = absl::InvalidArgumentError(
        absl::StrCat("ring ", region_->name(), ": request ", seq, " rejected: ", bad));
    Publish(slot, seq, error);
    return error;
  }
  uint8_t* base = region_->slot(slot);
  const RingSlotLayout& layout = region_->layout();
  view.num_tokens = num_tokens;
  view.top_k = top_k;
  view.hidden = reinterpret_cast<const float*>(base + layout.hidden);
  view.expert_ids = reinterpret_cast<const int32_t*>(base + layout.expert_ids);
  view.weights = reinterpret_cast<const float*>(base + layout.weights);
  view.result = reinterpret_cast<float*>(base + layout.result);
  handed_out_[slot] = seq;
  return view;
}

absl::Status RingConsumer::Complete(uint64_t seq, const absl::Status& status) {
  const uint32_t slot = static_cast<uint32_t>(seq % region_->capacity().depth);
  if (seq == 0 || handed_out_[slot] != seq) {
    return absl::FailedPreconditionError(
        absl::StrCat("ring ", region_->name(), ": request ", seq, " is not handed out"));
  }
  handed_out_[slot] = 0;
  Publish(slot, seq, status);
  return absl::OkStatus();
}

void RingConsumer::Publish(uint32_t slot, uint64_t seq, const absl::Status& status) {
  RingResponseLine* line = ResponseLine(*region_, slot);
  const size_t len = std::min<size_t>(status.message().size(), kRingErrorTextBytes);
  if (len > 0) {
    std::memcpy(region_->slot(slot) + region_->layout().error_text, status.message().data(), len);
  }
  line->error_len = static_cast<uint32_t>(len);
  line->status_code = static_cast<int32_t>(status.code());
  PublishSeq(&line->seq, &line->futex, seq, &counters_);
  __atomic_store_n(&line->done_flag, 1u, __ATOMIC_RELEASE);  // after seq: see RingResponseLine
}

}  // namespace tandem
