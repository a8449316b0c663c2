// The OpenAI-compatible HTTP server (cpp-httplib): POST /v1/completions and /v1/chat/completions
// (JSON, or SSE with `stream: true`: one `data: {chunk}` event per text delta, an optional usage
// chunk, then `data: [DONE]`), GET /v1/models, /health (503 until SetBackend, and while
// `health` reports a problem) and /metrics (Prometheus text). Bad requests get 4xx with OpenAI's
// error shape. A client that goes away cancels its request. Requests run on the server's thread
// pool, one thread per open request; the scheduler's engine thread does the work.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "coordinator/serving/openai_protocol.h"
#include "coordinator/serving/scheduler.h"
#include "coordinator/serving/serving_metrics.h"

namespace httplib {
class Server;
}

namespace tandem {

class OpenAiServer {
 public:
  // `threads`: the pool that serves requests; at least the requests that may be open at once.
  OpenAiServer(ServingMetrics& metrics, int threads);
  ~OpenAiServer();  // Stop()

  // Binds host:port (port 0: a free one) and serves on a thread of its own.
  absl::Status Start(const std::string& host, int port);
  int port() const { return port_; }
  void Stop();

  // From now on completions go to `scheduler` (owned by the caller, alive until Stop or the
  // next SetBackend) and /health answers 200 while `health` is OK.
  void SetBackend(Scheduler* scheduler, ServedModel model, std::function<absl::Status()> health)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Backend {
    Scheduler* scheduler = nullptr;
    ServedModel model;
    std::function<absl::Status()> health;
  };
  std::shared_ptr<const Backend> backend() const ABSL_LOCKS_EXCLUDED(mu_);
  void Routes();

  ServingMetrics& metrics_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Backend> backend_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem
