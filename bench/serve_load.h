// The client side of the serving benchmark (`tandem bench-serve`): drives an OpenAI-compatible
// server's /v1/completions with streaming requests from `concurrency` client threads (each sends
// its next request when its previous one ends) and measures what a user sees: output tokens/s
// over the level, time to first token (arrival of the first SSE chunk), inter-token latency.
// Any thread; blocking.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"

namespace tandem::bench {

// Splits a text/event-stream body, fed in pieces as they arrive, into the `data:` payloads of its
// events (e.g. "[DONE]" or a JSON chunk).
class SseDataSplitter {
 public:
  // Calls on_data for each event completed by these bytes; false as soon as on_data returns false.
  bool Feed(const char* bytes, size_t n, const std::function<bool(const std::string&)>& on_data) {
    buffer_.append(bytes, n);
    size_t end;
    while ((end = buffer_.find("\n\n")) != std::string::npos) {
      std::string event = buffer_.substr(0, end);
      buffer_.erase(0, end + 2);
      if (event.rfind("data: ", 0) == 0 && !on_data(event.substr(6))) return false;
    }
    return true;
  }

 private:
  std::string buffer_;
};

struct LoadLevel {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string model;
  int concurrency = 1;
  int requests = 0;       // in all; each client thread takes the next until they run out
  int prompt_len = 128;   // random token ids below vocab_size
  int max_tokens = 128;   // generated per request (EOS ignored)
  int64_t vocab_size = 0;
  uint64_t seed = 1;
};

struct LoadResult {
  int concurrency = 0, requests = 0, failed = 0;
  double wall_s = 0;
  int64_t output_tokens = 0;
  double output_tokens_per_s = 0;
  double ttft_mean_s = 0, ttft_p50_s = 0, ttft_p99_s = 0;
  double itl_mean_s = 0;  // (last chunk - first chunk) / (tokens - 1), averaged over requests
  std::string first_error;
};

absl::StatusOr<LoadResult> RunLoadLevel(const LoadLevel& level);

}  // namespace tandem::bench
