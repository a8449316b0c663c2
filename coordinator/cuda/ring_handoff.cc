#include "coordinator/cuda/ring_handoff.h"

#include <cuda.h>
#include <immintrin.h>

#include <chrono>
#include <cstddef>
#include <thread>

#include "kernels/cuda/cuda_status.h"
#include "spdlog/spdlog.h"

namespace tandem::cuda {

// The kernels address the lines by these offsets.
static_assert(offsetof(RingRequestLine, seq) == kRingRequestSeq);
static_assert(offsetof(RingRequestLine, flags) == kRingRequestFlags);
static_assert(offsetof(RingRequestLine, layer) == kRingRequestLayer);
static_assert(offsetof(RingRequestLine, num_tokens) == kRingRequestTokens);
static_assert(offsetof(RingRequestLine, top_k) == kRingRequestTopK);
static_assert(offsetof(RingResponseLine, seq) == kRingResponseSeq);
static_assert(offsetof(RingResponseLine, status_code) == kRingResponseStatus);
static_assert(offsetof(RingResponseLine, error_len) == kRingResponseErrorLen);
static_assert(offsetof(RingResponseLine, done_flag) == kRingResponseDoneFlag);
static_assert(kRingErrorBytes == kRingErrorTextBytes);

namespace {

using WaitValueFn = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);

}  // namespace

absl::StatusOr<RingWait> ParseRingWait(const std::string& name) {
  if (name == "memop") return RingWait::kMemOp;
  if (name == "host-func") return RingWait::kHostFunction;
  return absl::InvalidArgumentError(
      absl::StrCat("--ring-wait must be memop or host-func, not '", name, "'"));
}

const char* RingWaitName(RingWait wait) {
  return wait == RingWait::kMemOp ? "memop" : "host-func";
}

absl::StatusOr<std::unique_ptr<RingHandoff>> RingHandoff::Create(ExpertRings* rings,
                                                                 RingWait wait, int32_t pad_layer,
                                                                 cudaStream_t stream) {
  if (rings == nullptr || rings->count() < 1)
    return absl::InvalidArgumentError("the ring handoff needs worker rings");
  if (rings->count() > kMaxRingWorkers) {
    return absl::UnimplementedError(absl::StrCat("the GPU ring handoff serves up to ",
                                                 kMaxRingWorkers, " workers, not ",
                                                 rings->count()));
  }
  std::unique_ptr<RingHandoff> h(new RingHandoff(rings, wait, pad_layer, stream));
  TANDEM_RETURN_IF_ERROR(rings->AttachAll());
  const RingCapacity& cap = rings->region(0)->capacity();
  h->max_tokens_ = cap.max_tokens;
  h->depth_ = cap.depth;
  h->layout_ = rings->region(0)->layout();
  h->registered_.resize(rings->count());
  void* control = nullptr;
  TANDEM_CUDA_RETURN_IF_ERROR(
      cudaHostAlloc(&control, sizeof(RingStepControl), cudaHostAllocMapped), "cudaHostAlloc");
  h->control_ = new (control) RingStepControl();
  TANDEM_CUDA_RETURN_IF_ERROR(
      cudaHostGetDevicePointer(reinterpret_cast<void**>(&h->control_device_), control, 0),
      "cudaHostGetDevicePointer");
  if (wait == RingWait::kMemOp) {
    cudaDriverEntryPointQueryResult found;
    TANDEM_CUDA_RETURN_IF_ERROR(
        cudaGetDriverEntryPointByVersion("cuStreamWaitValue32", &h->wait_value_, 12000,
                                         cudaEnableDefault, &found),
        "cudaGetDriverEntryPointByVersion");
    if (found != cudaDriverEntryPointSuccess || h->wait_value_ == nullptr)
      return absl::UnimplementedError("the CUDA driver has no cuStreamWaitValue32");
  }
  rings->SetReleaseHook([raw = h.get()](RingRegion* region) { raw->Release(region); });
  return h;
}

RingHandoff::~RingHandoff() {
  rings_->SetReleaseHook(nullptr);
  for (Registered& r : registered_)
    if (r.region) cudaHostUnregister(r.region->base());
  if (control_) cudaFreeHost(control_);
}

void RingHandoff::Release(RingRegion* region) {
  // Called on the engine thread right before the region is unmapped. The GPU touches a ring only
  // inside a step, and a failed step waits for the GPU before it detaches the rings.
  for (Registered& r : registered_) {
    if (r.region != region) continue;
    if (cudaError_t e = cudaHostUnregister(region->base()); e != cudaSuccess)
      spdlog::warn("[coordinator] cudaHostUnregister of ring {}: {}", region->name(),
                   cudaGetErrorString(e));
    r = Registered{};
    ++generation_;
  }
}

absl::Status RingHandoff::Register(int w) {
  RingRegion* region = rings_->region(w);
  if (region->capacity().max_tokens != max_tokens_ || region->capacity().depth != depth_ ||
      !(region->layout() == layout_))
    return absl::InternalError("the workers' rings differ in capacity");
  TANDEM_CUDA_RETURN_IF_ERROR(
      cudaHostRegister(region->base(), region->size(), cudaHostRegisterMapped),
      "cudaHostRegister of a worker ring");
  void* device = nullptr;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaHostGetDevicePointer(&device, region->base(), 0),
                              "cudaHostGetDevicePointer of a worker ring");
  registered_[w] = {region, static_cast<uint8_t*>(device)};
  ++generation_;
  return absl::OkStatus();
}

absl::Status RingHandoff::Align(int w) {
  RingProducer* producer = rings_->producer(w);
  const LivenessCheck alive = [this, w] { return rings_->CheckAlive(w); };
  while ((producer->last_submitted() + 1) % depth_ != 1 % depth_) {
    RingRequest empty;
    empty.layer = pad_layer_;
    TANDEM_ASSIGN_OR_RETURN(const uint64_t seq, producer->Submit(empty));
    TANDEM_RETURN_IF_ERROR(producer->WaitResult(seq, nullptr, rings_->call_timeout(), alive));
  }
  return absl::OkStatus();
}

absl::Status RingHandoff::BeginStep(int64_t calls) {
  if (calls < 1) return absl::InvalidArgumentError("a ring step needs at least one call");
  TANDEM_RETURN_IF_ERROR(rings_->AttachAll());
  for (int w = 0; w < rings_->count(); ++w) {
    if (registered_[w].region != rings_->region(w)) TANDEM_RETURN_IF_ERROR(Register(w));
    if (absl::Status s = Align(w); !s.ok()) {
      rings_->Detach(w);
      return absl::UnavailableError(s.message());
    }
  }
  for (int w = 0; w < rings_->count(); ++w) {
    absl::StatusOr<uint64_t> base = rings_->producer(w)->ReserveExternal(calls);
    if (!base.ok()) {
      DetachAll();
      return base.status();
    }
    control_->base_seq[w] = *base;
  }
  control_->error.code = 0;
  {
    std::lock_guard<std::mutex> lock(host_error_mu_);
    host_error_ = absl::OkStatus();
  }
  while (static_cast<int64_t>(host_waits_.size()) < calls)
    host_waits_.push_back({this, static_cast<int64_t>(host_waits_.size())});
  calls_ = calls;
  return absl::OkStatus();
}

RingSlots RingHandoff::SlotsFor(int64_t index) const {
  RingSlots s;
  s.count = static_cast<int>(registered_.size());
  const uint32_t slot = static_cast<uint32_t>((1 + index) % depth_);
  for (int w = 0; w < s.count; ++w) {
    const RingRegion& region = *registered_[w].region;
    s.slot[w] = registered_[w].device_base + (region.slot(slot) - region.base());
  }
  s.request_line = layout_.request_line;
  s.response_line = layout_.response_line;
  s.error_text = layout_.error_text;
  s.hidden = layout_.hidden;
  s.expert_ids = layout_.expert_ids;
  s.weights = layout_.weights;
  s.result = layout_.result;
  return s;
}

absl::Status RingHandoff::EnqueueSubmit(int64_t index, int32_t layer, int64_t t, int64_t k,
                                        const float* hidden, const int32_t* ids,
                                        const float* weights) {
  if (index < 0 || index >= calls_ || t < 0 || t > max_tokens_)
    return absl::InternalError(absl::StrCat("ring call ", index, " of ", calls_, " with ", t,
                                            " tokens is outside the step"));
  const RingSlots slots = SlotsFor(index);
  const int64_t hidden_size = rings_->region(0)->capacity().hidden_size;
  LaunchRingStage(slots, hidden, t * hidden_size, ids, weights, t * k, stream_);
  LaunchRingPublish(slots, control_device_, index, layer, static_cast<uint32_t>(t),
                    static_cast<uint32_t>(k), 0, stream_);
  return LaunchStatus("ring submit");
}

absl::Status RingHandoff::EnqueueCollect(int64_t index, int64_t t, float* out) {
  const RingSlots slots = SlotsFor(index);
  if (wait_ == RingWait::kMemOp) {
    auto wait_value = reinterpret_cast<WaitValueFn>(wait_value_);
    for (int w = 0; w < slots.count; ++w) {
      const CUdeviceptr flag =
          reinterpret_cast<CUdeviceptr>(slots.slot[w] + slots.response_line +
                                        kRingResponseDoneFlag);
      if (CUresult r = wait_value(reinterpret_cast<CUstream>(stream_), flag, 1,
                                  CU_STREAM_WAIT_VALUE_EQ);
          r != CUDA_SUCCESS)
        return absl::InternalError(absl::StrCat("cuStreamWaitValue32 failed: CUresult ", r));
    }
  } else {
    TANDEM_CUDA_RETURN_IF_ERROR(cudaLaunchHostFunc(stream_, HostWaitEntry, &host_waits_[index]),
                                "cudaLaunchHostFunc");
  }
  const int64_t hidden_size = rings_->region(0)->capacity().hidden_size;
  LaunchRingGather(slots, control_device_, index, out, t * hidden_size, stream_);
  return LaunchStatus("ring collect");
}

void CUDART_CB RingHandoff::HostWaitEntry(void* arg) {
  auto* wait = static_cast<HostWait*>(arg);
  wait->self->WaitForAnswers(wait->index);
}

void RingHandoff::WaitForAnswers(int64_t index) {
  {
    std::lock_guard<std::mutex> lock(host_error_mu_);
    if (!host_error_.ok()) return;  // the step failed already: let the GPU run to its end
  }
  RingWaitOptions options;
  options.spin = absl::Milliseconds(1);
  RingWaitCounters counters;
  for (int w = 0; w < rings_->count(); ++w) {
    RingRegion& region = *registered_[w].region;
    const uint64_t seq = control_->base_seq[w] + index;
    RingResponseLine* line = ResponseLine(region, static_cast<uint32_t>(seq % depth_));
    absl::StatusOr<uint64_t> seen = WaitSeqChange(
        &line->seq, &line->futex, seq > depth_ ? seq - depth_ : 0, rings_->call_timeout(),
        options, [this, w] { return rings_->CheckAlive(w); }, &counters);
    absl::Status error = seen.status();
    if (seen.ok() && *seen != seq) {
      error = absl::DataLossError(absl::StrCat("ring ", region.name(), ": response ", *seen,
                                               " where ", seq, " was expected"));
    }
    if (!error.ok()) {
      std::lock_guard<std::mutex> lock(host_error_mu_);
      if (host_error_.ok()) host_error_ = error;
      return;
    }
  }
}

void RingHandoff::ReleaseWaits(int w) {
  RingRegion& region = *registered_[w].region;
  for (uint32_t slot = 0; slot < depth_; ++slot)
    __atomic_store_n(&ResponseLine(region, slot)->done_flag, 1u, __ATOMIC_RELEASE);
}

std::string RingHandoff::DescribeState() const {
  std::string out = absl::StrCat(calls_, " calls");
  for (int w = 0; w < static_cast<int>(registered_.size()); ++w) {
    RingRegion* region = registered_[w].region;
    if (region == nullptr) continue;
    absl::StrAppend(&out, "; ring ", region->name(), " base ", control_->base_seq[w]);
    for (uint32_t slot = 0; slot < depth_; ++slot) {
      const RingRequestLine* request = RequestLine(*region, slot);
      const RingResponseLine* response = ResponseLine(*region, slot);
      absl::StrAppend(&out, " | slot ", slot, ": request ", LoadOnce(request->seq), " (layer ",
                      LoadOnce(request->layer), ", ", LoadOnce(request->num_tokens),
                      " tokens), response ", LoadOnce(response->seq), " status ",
                      LoadOnce(response->status_code), " done ", LoadOnce(response->done_flag));
    }
  }
  return out;
}

void RingHandoff::DetachAll() {
  for (int w = 0; w < rings_->count(); ++w)
    if (rings_->region(w) != nullptr) rings_->Detach(w);
}

absl::Status RingHandoff::FinishStep(cudaEvent_t done, const absl::Status& enqueue_status) {
  const int count = rings_->count();
  std::vector<absl::Status> dead(count);
  absl::Status failure = enqueue_status;
  const auto start = std::chrono::steady_clock::now();
  auto next_check = start;
  bool reported = false;
  const auto deadline = start + absl::ToChronoNanoseconds(rings_->call_timeout()) * calls_;
  while (true) {
    const cudaError_t e = cudaEventQuery(done);
    if (e == cudaSuccess) break;
    if (e != cudaErrorNotReady) {
      failure = absl::InternalError(absl::StrCat("CUDA error in a ring step: ",
                                                 cudaGetErrorString(e)));
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    // memop waits: the GPU waits on flags only a live worker sets, so the host watches the
    // workers and sets the flags of a dead (or hopelessly late) one itself. host-func waits
    // watch the workers on their own.
    if (wait_ == RingWait::kMemOp && now >= next_check) {
      next_check = now + std::chrono::milliseconds(2);
      for (int w = 0; w < count; ++w) {
        if (dead[w].ok()) dead[w] = rings_->CheckAlive(w);
        if (dead[w].ok() && now > deadline) {
          dead[w] = absl::DeadlineExceededError(absl::StrCat(
              "ring ", registered_[w].region->name(), ": the step's ", calls_,
              " calls took longer than ", absl::FormatDuration(rings_->call_timeout()), " each"));
        }
        if (!dead[w].ok()) {
          if (failure.ok()) failure = dead[w];
          ReleaseWaits(w);
        }
      }
    }
    if (!reported && now - start > std::chrono::seconds(5)) {
      reported = true;  // a step this slow is stuck somewhere: say where
      spdlog::warn("[coordinator] a ring step has waited 5 s: {}", DescribeState());
    }
    // Mostly asleep: the experts' threads (workers, or the in-process ring's team) want every
    // core while the step runs; a step's end is noticed within ~0.1 ms.
    if (now - start < std::chrono::microseconds(50)) {
      _mm_pause();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  if (failure.ok()) {
    std::lock_guard<std::mutex> lock(host_error_mu_);
    failure = host_error_;
  }
  if (failure.ok() && control_->error.code != 0) {
    const RingStepError& e = control_->error;
    const std::string ring = registered_[e.worker].region->name();
    if (e.code < 0) {
      failure = absl::DataLossError(absl::StrCat("ring ", ring, ": slot shows response ",
                                                 e.seen_seq, " where ", e.expected_seq,
                                                 " was expected (worker broken)"));
    } else if (e.code > static_cast<int32_t>(absl::StatusCode::kUnauthenticated)) {
      failure = absl::DataLossError(absl::StrCat("ring ", ring, ": response ", e.seen_seq,
                                                 " has invalid status code ", e.code));
    } else {
      failure = absl::Status(static_cast<absl::StatusCode>(e.code),
                             absl::StrCat("ring ", ring, ": request ", e.expected_seq, ": ",
                                          std::string(e.text, e.text_len)));
    }
  }
  calls_ = 0;
  if (!failure.ok()) {
    // Wait out whatever the GPU still does with the rings, then start them over.
    cudaEventSynchronize(done);
    DetachAll();
    if (absl::IsDeadlineExceeded(failure) || absl::IsDataLoss(failure))
      failure = absl::UnavailableError(failure.message());
  }
  return failure;
}

}  // namespace tandem::cuda
