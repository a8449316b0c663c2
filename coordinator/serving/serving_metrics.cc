#include "coordinator/serving/serving_metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace tandem {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

std::string Histogram::Render(const std::string& name, const std::string& help) const {
  std::string out = absl::StrCat("# HELP ", name, " ", help, "\n# TYPE ", name, " histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(&out, name, "_bucket{le=\"", absl::StrFormat("%g", bounds_[i]), "\"} ",
                    cumulative, "\n");
  }
  absl::StrAppend(&out, name, "_bucket{le=\"+Inf\"} ", count_, "\n", name, "_sum ",
                  absl::StrFormat("%.9g", sum_), "\n", name, "_count ", count_, "\n");
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
  auto with_label = [&](std::string text) {
    std::string out;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (line.empty()) continue;
      if (line[0] == '#') {
        absl::StrAppend(&out, line, "\n");
        continue;
      }
      const size_t space = line.rfind(' ');
      absl::string_view series = line.substr(0, space), value = line.substr(space);
      if (series.back() == '}') {
        absl::StrAppend(&out, series.substr(0, series.size() - 1), ",", label, "}", value, "\n");
      } else {
        absl::StrAppend(&out, series, "{", label, "}", value, "\n");
      }
    }
    return out;
  };
  std::string text;
  auto gauge = [&](const std::string& name, const std::string& help, const std::string& value) {
    absl::StrAppend(&text, "# HELP ", name, " ", help, "\n# TYPE ", name, " gauge\n", name, " ",
                    value, "\n");
  };
  auto counter = [&](const std::string& name, const std::string& help, uint64_t value) {
    absl::StrAppend(&text, "# HELP ", name, " ", help, "\n# TYPE ", name, " counter\n", name, " ",
                    value, "\n");
  };
  gauge("tandem:num_requests_running", "Requests in the running batch.", absl::StrCat(running_));
  gauge("tandem:num_requests_waiting", "Requests waiting to join the batch.",
        absl::StrCat(waiting_));
  gauge("tandem:kv_cache_usage_perc", "Fraction of the KV cache in use (1 = full).",
        absl::StrFormat("%.6f", kv_cache_usage_));
  counter("tandem:prompt_tokens_total", "Prefill tokens processed.", prompt_tokens_);
  counter("tandem:generation_tokens_total", "Tokens generated.", generated_tokens_);
  absl::StrAppend(&text, "# HELP tandem:request_success_total Finished requests by reason.\n",
                  "# TYPE tandem:request_success_total counter\n");
  for (const char* reason : {"stop", "length", "abort", "error"}) {
    auto it = finished_.find(reason);
    absl::StrAppend(&text, "tandem:request_success_total{finished_reason=\"", reason, "\"} ",
                    it == finished_.end() ? 0 : it->second, "\n");
  }
  absl::StrAppend(&text, ttft_.Render("tandem:time_to_first_token_seconds",
                                      "Time from arrival to the first generated token."));
  absl::StrAppend(&text, itl_.Render("tandem:inter_token_latency_seconds",
                                     "Time between consecutive generated tokens of a request."));
  absl::StrAppend(&text, e2e_.Render("tandem:e2e_request_latency_seconds",
                                     "Time from arrival to the last token."));
  absl::StrAppend(&text, "# HELP tandem:worker_up Whether each expert worker answers (1) or not.\n",
                  "# TYPE tandem:worker_up gauge\n");
  for (const auto& [worker, up] : workers_)
    absl::StrAppend(&text, "tandem:worker_up{worker=\"", worker, "\"} ", up ? 1 : 0, "\n");
  return with_label(text);
}

}  // namespace tandem
