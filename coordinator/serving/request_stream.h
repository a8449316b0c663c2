// One request's channel between the scheduler's engine thread (producer) and the handler that
// serves the client (consumer: an HTTP or gRPC thread). Events are queued, never dropped; the
// last one has a finish reason or an error. Cancel() is how a handler that lost its client (or
// hit its deadline) tells the scheduler to stop the request and free its cache. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/status.h"

namespace tandem {

struct TokenUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

struct RequestEvent {
  std::string text;                // new visible text (may be empty)
  std::vector<int32_t> token_ids;  // tokens generated since the last event
  // Set on the last event: "stop" (EOS or a stop string), "length" (max_tokens or the context),
  // "cancelled", "timeout"; or `error` for a request the engine failed (e.g. a worker down).
  std::string finish_reason;
  absl::Status error;
  TokenUsage usage;  // on the last event
  bool last() const { return !finish_reason.empty() || !error.ok(); }
};

class RequestStream {
 public:
  explicit RequestStream(std::string id) : id_(std::move(id)) {}
  const std::string& id() const { return id_; }

  // Consumer: the events queued so far, waiting up to `timeout` for the first. Empty on timeout.
  std::vector<RequestEvent> Next(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  // Consumer, any thread: asks the scheduler to stop the request; its last event follows
  // ("cancelled").
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }

  // Producer (engine thread).
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  void Push(RequestEvent event) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const std::string id_;
  std::atomic<bool> cancelled_{false};
  absl::Mutex mu_;
  std::deque<RequestEvent> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem
