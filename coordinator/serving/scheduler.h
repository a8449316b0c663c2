// Continuous batching over one Engine: requests wait in a queue, join the running batch as soon as
// there is room (up to max_num_seqs), and every engine step runs one decode token of each running
// request plus prompt chunks of the ones still prefilling (chunked prefill: at most
// max_batch_tokens tokens a step), sampling per request. Text streams to each request's
// RequestStream through its own detokenizer and stop strings. A request ends at EOS, a stop
// string, max_tokens, the context length, its timeout, or when cancelled; its cache is freed at
// once. Where the engine's KV cache is bounded (GPU), a request joins only when the cache has
// room for its prompt and max_tokens, so running requests never run out of it. An engine failure (e.g. a worker down) fails the requests of that step with the error and
// the scheduler goes on (the engine re-attaches workers on the next step).
//
// Threads: Submit / BeginDrain / Snapshot from any thread; the engine is driven only by the
// scheduler's own thread, which Start creates and the destructor joins.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/tokenizer.h"
#include "coordinator/engine.h"
#include "coordinator/sampler.h"
#include "coordinator/serving/request_stream.h"
#include "coordinator/serving/serving_metrics.h"

namespace tandem {

struct SchedulerOptions {
  int64_t max_num_seqs = 16;        // requests in the running batch
  int64_t max_model_len = 0;        // prompt + generated tokens of one request; > 0
  int64_t max_waiting = 256;        // queued requests beyond which Submit refuses
  int64_t max_batch_tokens = 512;   // tokens of one step (decode tokens + prompt chunks)
  absl::Duration request_timeout = absl::InfiniteDuration();  // default per request
  absl::Duration worker_check_interval = absl::Milliseconds(500);
};

struct ServeRequest {
  std::string id;
  std::vector<int32_t> prompt_ids;
  int64_t max_tokens = 16;
  SamplingParams sampling;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  absl::Duration timeout = absl::ZeroDuration();  // zero: the scheduler's default
};

struct SchedulerSnapshot {
  int64_t running = 0, waiting = 0;
  int64_t cached_tokens = 0;  // tokens held by the running requests' caches
  bool draining = false;
};

class Scheduler {
 public:
  // `tokenizer` may be null (no text, token ids only). `metrics` may be null.
  Scheduler(Engine& engine, const Tokenizer* tokenizer, SchedulerOptions options,
            ServingMetrics* metrics);
  ~Scheduler();  // cancels what is left and joins the engine thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void Start();

  // Queues a request. InvalidArgument for bad sampling parameters, an empty prompt, a prompt
  // that leaves no room in the context or out-of-vocabulary ids; ResourceExhausted when the
  // queue is full; Unavailable while draining.
  absl::StatusOr<std::shared_ptr<RequestStream>> Submit(ServeRequest request)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Refuses new requests from now on; queued and running ones finish.
  void BeginDrain() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until nothing is queued or running, up to `timeout`; true if idle.
  bool WaitIdle(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  SchedulerSnapshot Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  // OK while every expert worker answers; else Unavailable naming the first one down. The engine
  // thread checks them every worker_check_interval, and while idle re-attaches workers that
  // listen again (a restarted worker).
  absl::Status WorkerHealth() const ABSL_LOCKS_EXCLUDED(mu_);
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Active;
  void Loop();
  // Moves queued requests into the batch while there is room. Engine thread.
  void Admit(std::vector<std::unique_ptr<Active>>& running) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs one step over the batch; finished requests leave it. Engine thread.
  void Step(std::vector<std::unique_ptr<Active>>& running);
  // The token a request drew: text, stop conditions, events. True when the request is done.
  bool Accept(Active& a, int32_t token);
  void Finish(Active& a, const std::string& reason, absl::Status error = absl::OkStatus());
  // Pushes a request's last event (usage filled in), counts it, frees its cache.
  void End(Active& a, RequestEvent last);
  void PublishQueue(const std::vector<std::unique_ptr<Active>>& running);
  // A request's cache size (prompt + max_tokens, at most the context), and what it reserves of
  // a bounded KV cache (rounded up to whole pages).
  int64_t CacheTokens(const ServeRequest& r) const;
  int64_t KvTokens(const ServeRequest& r) const;
  // Frees a finished request's cache and its reservation. Engine thread.
  void Release(Active& a);
  // Checks the expert workers (engine thread); re-attaches them when `idle`.
  void CheckWorkers(bool idle) ABSL_LOCKS_EXCLUDED(mu_);

  Engine& engine_;
  const Tokenizer* tokenizer_;
  const SchedulerOptions options_;
  ServingMetrics* metrics_;

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Active>> queue_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t running_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t cached_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status worker_health_ ABSL_GUARDED_BY(mu_);
  absl::Time last_worker_check_ = absl::InfinitePast();  // engine thread
  absl::Time last_reattach_ = absl::InfinitePast();      // engine thread
  int64_t kv_reserved_ = 0;  // KV tokens reserved by the running requests; engine thread
  std::thread thread_;
};

}  // namespace tandem
