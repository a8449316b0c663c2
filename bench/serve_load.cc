#include "bench/serve_load.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"

namespace tandem::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct OneRequest {
  bool ok = false;
  std::string error;
  double ttft_s = 0, last_s = 0;
  int64_t tokens = 0;
};

OneRequest Send(const LoadLevel& level, const std::vector<int32_t>& prompt) {
  nlohmann::json body = {{"model", level.model},       {"prompt", prompt},
                         {"max_tokens", level.max_tokens}, {"temperature", 0},
                         {"ignore_eos", true},         {"stream", true},
                         {"stream_options", {{"include_usage", true}}}};
  httplib::Client client(level.host, level.port);
  client.set_read_timeout(600, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  OneRequest r;
  SseDataSplitter sse;
  const Clock::time_point start = Clock::now();
  bool first = true, done = false;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    return sse.Feed(data, n, [&](const std::string& payload) {
      const double at = std::chrono::duration<double>(Clock::now() - start).count();
      if (payload == "[DONE]") {
        done = true;
        return true;
      }
      nlohmann::json chunk = nlohmann::json::parse(payload, nullptr, false);
      if (chunk.is_discarded() || chunk.contains("error")) {
        r.error = chunk.is_discarded() ? "bad chunk" : chunk["error"].dump();
        return false;
      }
      if (chunk.contains("usage") && chunk["usage"].is_object()) {
        r.tokens = chunk["usage"]["completion_tokens"].get<int64_t>();
        return true;
      }
      if (first) r.ttft_s = at;
      first = false;
      r.last_s = at;
      return true;
    });
  };
  auto res = client.send(req);
  if (!res) {
    r.error = httplib::to_string(res.error());
  } else if (res->status != 200) {
    r.error = "HTTP " + std::to_string(res->status);
  } else if (!done || r.tokens == 0) {
    if (r.error.empty()) r.error = "the stream ended early";
  } else {
    r.ok = true;
  }
  return r;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

}  // namespace

absl::StatusOr<LoadResult> RunLoadLevel(const LoadLevel& level) {
  if (level.concurrency < 1 || level.requests < 1 || level.prompt_len < 1 ||
      level.max_tokens < 1 || level.vocab_size < 1)
    return absl::InvalidArgumentError("a load level needs concurrency, requests, prompt and "
                                      "output lengths and the vocabulary size");
  std::vector<std::vector<int32_t>> prompts(level.requests);
  std::mt19937_64 rng(level.seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(level.vocab_size - 1));
  for (auto& p : prompts) {
    p.resize(level.prompt_len);
    for (int32_t& id : p) id = token(rng);
  }
  std::vector<OneRequest> results(level.requests);
  std::atomic<int> next{0};
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < level.concurrency; ++c) {
    clients.emplace_back([&] {
      for (int i = next++; i < level.requests; i = next++) results[i] = Send(level, prompts[i]);
    });
  }
  for (std::thread& t : clients) t.join();
  LoadResult out;
  out.concurrency = level.concurrency;
  out.requests = level.requests;
  out.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> ttft;
  double itl_sum = 0;
  int itl_count = 0;
  for (const OneRequest& r : results) {
    if (!r.ok) {
      ++out.failed;
      if (out.first_error.empty()) out.first_error = r.error;
      continue;
    }
    out.output_tokens += r.tokens;
    ttft.push_back(r.ttft_s);
    if (r.tokens > 1) {
      itl_sum += (r.last_s - r.ttft_s) / (r.tokens - 1);
      ++itl_count;
    }
  }
  out.output_tokens_per_s = out.output_tokens / out.wall_s;
  double sum = 0;
  for (double t : ttft) sum += t;
  out.ttft_mean_s = ttft.empty() ? 0 : sum / ttft.size();
  out.ttft_p50_s = Percentile(ttft, 0.5);
  out.ttft_p99_s = Percentile(ttft, 0.99);
  out.itl_mean_s = itl_count ? itl_sum / itl_count : 0;
  return out;
}

}  // namespace tandem::bench
