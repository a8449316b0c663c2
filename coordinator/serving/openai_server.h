// The OpenAI-compatible HTTP server (cpp-httplib): POST /v1/completions and /v1/chat/completions
// (JSON, or SSE with `stream: true`: one `data: {chunk}` event per text delta, an optional usage
// chunk, then `data: [DONE]`), GET /v1/models, /health (503 until SetBackend, and while
// `health` reports a problem) and /metrics (Prometheus text). Bad requests get 4xx with OpenAI's
// error shape. A client that goes away cancels its request. Requests run on the server's thread
// pool, one thread per open request; the scheduler's engine thread does the work. /health is 200
// while BackendHealth (serving_backend.h) is OK.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "coordinator/serving/openai_protocol.h"
#include "coordinator/serving/scheduler.h"
#include "coordinator/serving/serving_backend.h"
#include "coordinator/serving/serving_metrics.h"

namespace httplib {
class Server;
}

namespace tandem {

class OpenAiServer {
 public:
  // `threads`: the pool that serves requests; at least the requests that may be open at once.
  // `slot`: what to serve (empty while loading); it outlives the server.
  OpenAiServer(const BackendSlot& slot, ServingMetrics& metrics, int threads);
  ~OpenAiServer();  // Stop()

  // Binds host:port (port 0: a free one) and serves on a thread of its own.
  absl::Status Start(const std::string& host, int port);
  int port() const { return port_; }
  void Stop();

 private:
  std::shared_ptr<const ServingBackend> backend() const { return slot_.Get(); }
  void Routes();

  ServingMetrics& metrics_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
  const BackendSlot& slot_;
};

}  // namespace tandem
