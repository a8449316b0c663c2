#include "coordinator/local_ring.h"

#include <omp.h>

#include <chrono>

#include "common/topology.h"
#include "spdlog/spdlog.h"

namespace tandem {

absl::StatusOr<std::unique_ptr<LocalRing>> LocalRing::Create(ExpertExecutor* executor,
                                                             const RingCapacity& capacity,
                                                             int32_t num_layers) {
  absl::StatusOr<std::vector<int>> cpus = AllowedCpus();
  std::unique_ptr<LocalRing> ring(new LocalRing(
      executor, capacity, num_layers, cpus.ok() ? *cpus : std::vector<int>()));
  TANDEM_RETURN_IF_ERROR(ring->AttachAll());
  return ring;
}

LocalRing::~LocalRing() { Detach(0); }

absl::Status LocalRing::AttachAll() {
  if (region_) return absl::OkStatus();
  TANDEM_ASSIGN_OR_RETURN(region_, RingRegion::Create("local", capacity_));
  TANDEM_RETURN_IF_ERROR(region_->Unlink());  // mapped here only
  producer_ = std::make_unique<RingProducer>(region_.get());
  stop_ = false;
  broken_ = false;
  thread_ = std::thread([this] { Serve(); });
  ++generation_;
  return absl::OkStatus();
}

absl::Status LocalRing::CheckAlive(int) {
  if (!region_ || broken_) return absl::UnavailableError("the in-process expert ring is broken");
  return absl::OkStatus();
}

void LocalRing::Detach(int) {
  if (!region_) return;
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (release_hook_) release_hook_(region_.get());
  producer_.reset();
  region_.reset();
  ++generation_;
}

void LocalRing::Serve() {
  if (!cpus_.empty()) {
    const int n = static_cast<int>(cpus_.size());
    omp_set_num_threads(n);
#pragma omp parallel num_threads(n)
    {
      if (absl::Status s = PinThreadToCpu(cpus_[omp_get_thread_num() % n]); !s.ok())
        spdlog::debug("[coordinator] local expert ring: {}", s.ToString());
    }
  }
  // A GPU cannot wake a sleeping consumer: spin a while after each request, then poll.
  RingWaitOptions wait;
  wait.spin = absl::Milliseconds(5);
  wait.liveness_interval = absl::Microseconds(50);
  RingConsumer consumer(region_.get(), RingLayerRange{0, num_layers_}, wait);
  const LivenessCheck stopping = [this]() -> absl::Status {
    if (stop_.load(std::memory_order_acquire)) return absl::CancelledError("stopping");
    return absl::OkStatus();
  };
  while (!stop_.load(std::memory_order_acquire)) {
    absl::StatusOr<RingRequestView> view = consumer.WaitRequest(absl::Milliseconds(100), stopping);
    if (!view.ok()) {
      const absl::StatusCode code = view.status().code();
      if (code == absl::StatusCode::kDeadlineExceeded || code == absl::StatusCode::kCancelled ||
          code == absl::StatusCode::kInvalidArgument)  // idle, stopping, or answered already
        continue;
      spdlog::error("[coordinator] local expert ring: {}", view.status().ToString());
      broken_ = true;
      return;
    }
    MoeBatch batch{view->layer, view->num_tokens, view->top_k, view->hidden, view->expert_ids,
                   view->weights};
    absl::Status status;
    const auto start = std::chrono::steady_clock::now();
    try {
      status = executor_->Run(batch, view->result);
    } catch (const std::exception& e) {  // answer it, never die of a request
      status = absl::InternalError(absl::StrCat("expert computation failed: ", e.what()));
    }
    busy_ns_.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - start).count(),
                       std::memory_order_relaxed);
    if (absl::Status s = consumer.Complete(view->seq, status); !s.ok()) {
      spdlog::error("[coordinator] local expert ring: {}", s.ToString());
      broken_ = true;
      return;
    }
  }
}

}  // namespace tandem
