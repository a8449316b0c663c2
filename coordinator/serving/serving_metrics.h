// The server's Prometheus metrics, named as vLLM names them with the prefix "tandem:" (so
// dashboards built for vLLM work with the prefix swapped): request counts by finish reason, prompt
// and generated tokens, time to first token, inter-token latency and end-to-end latency
// histograms, running and waiting requests, KV cache usage, and each worker's up/down state.
// Written by the scheduler (engine thread) and the servers; rendered by /metrics. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace tandem {

// A Prometheus histogram with fixed bucket bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // "# HELP" and "# TYPE" lines, cumulative _bucket lines, _sum and _count, each sample with
  // `labels` (e.g. model_name="m").
  std::string Render(const std::string& name, const std::string& help,
                     const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last: +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServingMetrics {
 public:
  ServingMetrics();

  void RequestFinished(const std::string& reason, double e2e_seconds) ABSL_LOCKS_EXCLUDED(mu_);
  void PromptTokens(int64_t n) ABSL_LOCKS_EXCLUDED(mu_);
  void GeneratedTokens(int64_t n) ABSL_LOCKS_EXCLUDED(mu_);
  void TimeToFirstToken(double seconds) ABSL_LOCKS_EXCLUDED(mu_);
  void InterTokenLatency(double seconds) ABSL_LOCKS_EXCLUDED(mu_);
  void SetQueue(int64_t running, int64_t waiting, double kv_cache_usage) ABSL_LOCKS_EXCLUDED(mu_);
  void SetWorkerUp(int worker, bool up) ABSL_LOCKS_EXCLUDED(mu_);

  std::string RenderPrometheus(const std::string& model_name) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, uint64_t> finished_ ABSL_GUARDED_BY(mu_);  // by finish reason
  uint64_t prompt_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t generated_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  Histogram ttft_ ABSL_GUARDED_BY(mu_);
  Histogram itl_ ABSL_GUARDED_BY(mu_);
  Histogram e2e_ ABSL_GUARDED_BY(mu_);
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t waiting_ ABSL_GUARDED_BY(mu_) = 0;
  double kv_cache_usage_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int, bool> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem
