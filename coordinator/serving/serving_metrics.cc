#include "coordinator/serving/serving_metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

std::string Histogram::Render(const std::string& name, const std::string& help,
                              const std::string& labels) const {
  std::string out = absl::StrCat("# HELP ", name, " ", help, "\n# TYPE ", name, " histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(&out, name, "_bucket{le=\"", absl::StrFormat("%g", bounds_[i]), "\",",
                    labels, "} ", cumulative, "\n");
  }
  absl::StrAppend(&out, name, "_bucket{le=\"+Inf\",", labels, "} ", count_, "\n", name, "_sum{",
                  labels, "} ", absl::StrFormat("%.9g", sum_), "\n", name, "_count{", labels,
                  "} ", count_, "\n");
  return out;
}

namespace {

// vLLM's bucket bounds for these histograms (seconds).
std::vector<double> TtftBounds() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
          10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}
std::vector<double> ItlBounds() {
  return {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
          20.0, 40.0, 80.0};
}
std::vector<double> E2eBounds() {
  return {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
          240.0, 480.0, 960.0, 1920.0, 7680.0};
}

}  // namespace

ServingMetrics::ServingMetrics() : ttft_(TtftBounds()), itl_(ItlBounds()), e2e_(E2eBounds()) {}

void ServingMetrics::RequestFinished(const std::string& reason, double e2e_seconds) {
  absl::MutexLock lock(&mu_);
  ++finished_[reason];
  e2e_.Observe(e2e_seconds);
}
void ServingMetrics::PromptTokens(int64_t n) {
  absl::MutexLock lock(&mu_);
  prompt_tokens_ += n;
}
void ServingMetrics::GeneratedTokens(int64_t n) {
  absl::MutexLock lock(&mu_);
  generated_tokens_ += n;
}
void ServingMetrics::TimeToFirstToken(double seconds) {
  absl::MutexLock lock(&mu_);
  ttft_.Observe(seconds);
}
void ServingMetrics::InterTokenLatency(double seconds) {
  absl::MutexLock lock(&mu_);
  itl_.Observe(seconds);
}
void ServingMetrics::SetQueue(int64_t running, int64_t waiting, double kv_cache_usage) {
  absl::MutexLock lock(&mu_);
  running_ = running;
  waiting_ = waiting;
  kv_cache_usage_ = kv_cache_usage;
}
void ServingMetrics::SetWorkerUp(int worker, bool up) {
  absl::MutexLock lock(&mu_);
  workers_[worker] = up;
}

std::string ServingMetrics::RenderPrometheus(const std::string& model_name) const {
  absl::MutexLock lock(&mu_);
  // Every sample carries the model name, as vLLM's do.
  const std::string label = absl::StrCat("model_name=\"", model_name, "\"");
  std::string text;
  auto header = [&](const std::string& name, const std::string& help, const char* type) {
    absl::StrAppend(&text, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  };
  auto single = [&](const std::string& name, const std::string& help, const char* type,
                    const std::string& value) {
    header(name, help, type);
    absl::StrAppend(&text, name, "{", label, "} ", value, "\n");
  };
  single("tandem:num_requests_running", "Requests in the running batch.", "gauge",
         absl::StrCat(running_));
  single("tandem:num_requests_waiting", "Requests waiting to join the batch.", "gauge",
         absl::StrCat(waiting_));
  single("tandem:kv_cache_usage_perc", "Fraction of the KV cache in use (1 = full).", "gauge",
         absl::StrFormat("%.6f", kv_cache_usage_));
  single("tandem:prompt_tokens_total", "Prefill tokens processed.", "counter",
         absl::StrCat(prompt_tokens_));
  single("tandem:generation_tokens_total", "Tokens generated.", "counter",
         absl::StrCat(generated_tokens_));
  header("tandem:request_success_total", "Finished requests by reason.", "counter");
  for (const char* reason : {"stop", "length", "abort", "error"}) {
    auto it = finished_.find(reason);
    absl::StrAppend(&text, "tandem:request_success_total{finished_reason=\"", reason, "\",",
                    label, "} ", it == finished_.end() ? 0 : it->second, "\n");
  }
  absl::StrAppend(&text, ttft_.Render("tandem:time_to_first_token_seconds",
                                      "Time from arrival to the first generated token.", label));
  absl::StrAppend(&text,
                  itl_.Render("tandem:inter_token_latency_seconds",
                              "Time between consecutive generated tokens of a request.", label));
  absl::StrAppend(&text, e2e_.Render("tandem:e2e_request_latency_seconds",
                                     "Time from arrival to the last token.", label));
  header("tandem:worker_up", "Whether each expert worker answers (1) or not.", "gauge");
  for (const auto& [worker, up] : workers_)
    absl::StrAppend(&text, "tandem:worker_up{worker=\"", worker, "\",", label, "} ", up ? 1 : 0,
                    "\n");
  return text;
}

}  // namespace tandem
