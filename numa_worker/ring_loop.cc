#include "numa_worker/ring_loop.h"

#include "coordinator/worker_messages.h"

#include <chrono>
#include <exception>

#include "spdlog/spdlog.h"

namespace tandem {

std::unique_ptr<RingLoop> RingLoop::Start(std::unique_ptr<RingRegion> region,
                                          RingLoopConfig config) {
  std::unique_ptr<RingLoop> loop(new RingLoop(std::move(region), std::move(config)));
  loop->thread_ = std::thread([raw = loop.get()] { raw->Run(); });
  return loop;
}

RingLoop::RingLoop(std::unique_ptr<RingRegion> region, RingLoopConfig config)
    : region_(std::move(region)),
      config_(std::move(config)),
      expert_stamp_(config_.holds_expert.size(), 0) {}

RingLoop::~RingLoop() { Stop(); }

void RingLoop::Stop() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  serving_.store(false, std::memory_order_release);
}

void RingLoop::Run() {
  if (absl::Status s = PinOpenMpTeam(config_.binding); !s.ok())
    spdlog::warn("ring {}: OpenMP threads not pinned: {}", region_->name(), s.ToString());
  RingConsumer consumer(region_.get(),
                        RingLayerRange{0, static_cast<int32_t>(config_.config->num_layers)},
                        config_.wait);
  const LivenessCheck stopping = [this]() -> absl::Status {
    if (stop_.load(std::memory_order_acquire)) return absl::CancelledError("worker stopping");
    return absl::OkStatus();
  };
  spdlog::info("serving ring {} (depth {}, up to {} tokens x top-{})", region_->name(),
               region_->capacity().depth, region_->capacity().max_tokens,
               region_->capacity().max_top_k);
  while (!stop_.load(std::memory_order_acquire)) {
    absl::StatusOr<RingRequestView> view = consumer.WaitRequest(config_.poll, stopping);
    if (view.ok()) {
      if (!Serve(consumer, *view)) break;
      continue;
    }
    const absl::StatusCode code = view.status().code();
    if (code == absl::StatusCode::kDeadlineExceeded || code == absl::StatusCode::kCancelled)
      continue;  // idle, or stopping: the loop condition decides
    config_.counters->errors.fetch_add(1, std::memory_order_relaxed);
    if (code == absl::StatusCode::kInvalidArgument) {
      // A bad header: the consumer already answered it with this error.
      spdlog::debug("{}", view.status().ToString());
      continue;
    }
    spdlog::error("ring {} is broken, no longer serving it: {}", region_->name(),
                  view.status().ToString());
    break;
  }
  serving_.store(false, std::memory_order_release);
  spdlog::info("stopped serving ring {}", region_->name());
}

bool RingLoop::Serve(RingConsumer& consumer, const RingRequestView& view) {
  const MoeBatch batch = ToMoeBatch(view);
  const auto start = std::chrono::steady_clock::now();
  absl::Status status;
  try {
    status = config_.shard->Run(batch, view.result);
  } catch (const std::exception& e) {  // e.g. bad_alloc: answer it, never die of a request
    status = absl::InternalError(absl::StrCat("expert computation failed: ", e.what()));
  }
  const auto busy = std::chrono::steady_clock::now() - start;
  WorkerCounters& c = *config_.counters;
  if (status.ok()) {
    c.requests.fetch_add(1, std::memory_order_relaxed);
    c.tokens.fetch_add(static_cast<uint64_t>(view.num_tokens), std::memory_order_relaxed);
    c.busy_ns.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(busy).count(),
                        std::memory_order_relaxed);
    c.expert_bytes_read.fetch_add(ExpertBytesUsed(view), std::memory_order_relaxed);
  } else {
    c.errors.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("ring {}: request {} failed: {}", region_->name(), view.seq, status.ToString());
  }
  if (absl::Status s = consumer.Complete(view.seq, status); !s.ok()) {
    spdlog::error("ring {}: {}", region_->name(), s.ToString());  // a bug of this loop
    return false;
  }
  return true;
}

uint64_t RingLoop::ExpertBytesUsed(const RingRequestView& view) {
  const int64_t num_experts = static_cast<int64_t>(expert_stamp_.size());
  const int64_t pairs = view.num_tokens * view.top_k;
  uint64_t used = 0;
  for (int64_t i = 0; i < pairs; ++i) {
    const int32_t e = LoadOnce(view.expert_ids[i]);  // the producer may rewrite it: read once
    if (e < 0 || e >= num_experts || !config_.holds_expert[e] || expert_stamp_[e] == view.seq)
      continue;
    expert_stamp_[e] = view.seq;
    ++used;
  }
  return used * config_.bytes_per_expert;
}

}  // namespace tandem
