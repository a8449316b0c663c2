#include "coordinator/serving/scheduler.h"

#include <algorithm>
#include <optional>

#include "coordinator/stop_strings.h"
#include "spdlog/spdlog.h"

namespace tandem {

struct Scheduler::Active {
  Active(ServeRequest r, const Tokenizer* tokenizer)
      : request(std::move(r)),
        stream(std::make_shared<RequestStream>(request.id)),
        sampler(request.sampling),
        stops(request.stop),
        history(request.prompt_ids),
        arrival(absl::Now()) {
    if (tokenizer) decoder.emplace(*tokenizer, /*skip_special_tokens=*/true);
  }
  bool decoding() const { return prefilled == request.prompt_ids.size(); }

  ServeRequest request;
  std::shared_ptr<RequestStream> stream;
  std::unique_ptr<SequenceCache> cache;  // from admission to the end
  Sampler sampler;
  std::optional<StreamingDecoder> decoder;
  StopStrings stops;
  std::vector<int32_t> history;  // prompt, then the generated tokens
  size_t prefilled = 0;          // prompt tokens already in the cache
  int64_t generated = 0;
  int64_t kv_tokens = 0;         // KV cache reserved for it while it runs (page-rounded)
  absl::Time arrival, deadline = absl::InfiniteFuture(), last_token;
};

namespace {

// The metrics' label for a finish reason (vLLM's: stop, length, abort).
std::string MetricReason(const std::string& reason, const absl::Status& error) {
  if (!error.ok()) return "error";
  if (reason == "stop" || reason == "length") return reason;
  return "abort";
}

}  // namespace

int64_t Scheduler::CacheTokens(const ServeRequest& r) const {
  return std::min<int64_t>(options_.max_model_len,
                           static_cast<int64_t>(r.prompt_ids.size()) + r.max_tokens);
}

int64_t Scheduler::KvTokens(const ServeRequest& r) const {
  const int64_t page = std::max<int64_t>(1, engine_.KvCachePageTokens());
  return (CacheTokens(r) + page - 1) / page * page;
}

Scheduler::Scheduler(Engine& engine, const Tokenizer* tokenizer, SchedulerOptions options,
                     ServingMetrics* metrics)
    : engine_(engine), tokenizer_(tokenizer), options_(options), metrics_(metrics) {}

Scheduler::~Scheduler() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Scheduler::Start() { thread_ = std::thread([this] { Loop(); }); }

absl::StatusOr<std::shared_ptr<RequestStream>> Scheduler::Submit(ServeRequest request) {
  TANDEM_RETURN_IF_ERROR(request.sampling.Validate());
  if (request.prompt_ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  if (request.max_tokens < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be at least 1, got ", request.max_tokens));
  const int64_t prompt = static_cast<int64_t>(request.prompt_ids.size());
  if (prompt > options_.max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("the prompt has ", prompt, " tokens; the context length is ",
                     options_.max_model_len));
  }
  const int64_t vocab = engine_.config().vocab_size;
  for (int32_t id : request.prompt_ids) {
    if (id < 0 || id >= vocab)
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is outside the vocabulary [0, ", vocab, ")"));
  }
  const int64_t kv_capacity = engine_.KvCacheCapacityTokens();
  if (kv_capacity > 0 && KvTokens(request) > kv_capacity) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request needs ", CacheTokens(request), " tokens of KV cache (prompt + max_tokens); "
        "the server's KV cache holds ", kv_capacity, ": lower max_tokens"));
  }
  auto active = std::make_unique<Active>(std::move(request), tokenizer_);
  const absl::Duration timeout = active->request.timeout > absl::ZeroDuration()
                                     ? active->request.timeout
                                     : options_.request_timeout;
  active->deadline = active->arrival + timeout;
  std::shared_ptr<RequestStream> stream = active->stream;
  absl::MutexLock lock(&mu_);
  if (draining_ || stopping_) return absl::UnavailableError("the server is shutting down");
  if (static_cast<int64_t>(queue_.size()) >= options_.max_waiting) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the server is at capacity: ", running_count_, " requests running and ",
                     queue_.size(), " waiting; retry later"));
  }
  queue_.push_back(std::move(active));
  return stream;
}

void Scheduler::BeginDrain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool Scheduler::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return queue_.empty() && running_count_ == 0;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

SchedulerSnapshot Scheduler::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return {running_count_, static_cast<int64_t>(queue_.size()), cached_tokens_, draining_};
}

void Scheduler::Finish(Active& a, const std::string& reason, absl::Status error) {
  RequestEvent last;
  last.finish_reason = error.ok() ? reason : "";
  last.error = std::move(error);
  End(a, std::move(last));
}

void Scheduler::End(Active& a, RequestEvent last) {
  last.usage = {static_cast<int64_t>(a.request.prompt_ids.size()), a.generated};
  if (metrics_)
    metrics_->RequestFinished(MetricReason(last.finish_reason, last.error),
                              absl::ToDoubleSeconds(absl::Now() - a.arrival));
  a.stream->Push(std::move(last));
  Release(a);
}

void Scheduler::Release(Active& a) {
  a.cache.reset();
  kv_reserved_ -= a.kv_tokens;
  a.kv_tokens = 0;
}

void Scheduler::Admit(std::vector<std::unique_ptr<Active>>& running) {
  std::vector<std::unique_ptr<Active>> admitted, dropped;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    // Requests cancelled or out of time while they waited leave the queue first.
    for (auto& a : queue_)
      if (a->stream->cancelled() || now >= a->deadline) dropped.push_back(std::move(a));
    std::erase(queue_, nullptr);
    // In arrival order, while the batch and the KV cache have room for the whole request (its
    // prompt and max_tokens): a running request never runs out of cache.
    const int64_t kv_capacity = engine_.KvCacheCapacityTokens();
    int64_t reserved = kv_reserved_;
    while (!queue_.empty() &&
           static_cast<int64_t>(running.size() + admitted.size()) < options_.max_num_seqs) {
      const int64_t need = KvTokens(queue_.front()->request);
      if (kv_capacity > 0 && reserved + need > kv_capacity) break;
      reserved += need;
      queue_.front()->kv_tokens = need;
      admitted.push_back(std::move(queue_.front()));
      queue_.erase(queue_.begin());
    }
    running_count_ = static_cast<int64_t>(running.size() + admitted.size());
  }
  for (auto& a : dropped) Finish(*a, a->stream->cancelled() ? "cancelled" : "timeout");
  for (auto& a : admitted) {
    kv_reserved_ += a->kv_tokens;
    a->cache = engine_.NewCache(CacheTokens(a->request));
    running.push_back(std::move(a));
  }
}

bool Scheduler::Accept(Active& a, int32_t token) {
  const absl::Time now = absl::Now();
  ++a.generated;
  a.history.push_back(token);
  if (metrics_) {
    metrics_->GeneratedTokens(1);
    if (a.generated == 1) {
      metrics_->TimeToFirstToken(absl::ToDoubleSeconds(now - a.arrival));
    } else {
      metrics_->InterTokenLatency(absl::ToDoubleSeconds(now - a.last_token));
    }
  }
  a.last_token = now;
  const std::vector<int32_t>& eos = engine_.config().eos_token_ids;
  const bool is_eos = !a.request.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end();
  RequestEvent event;
  event.token_ids.push_back(token);
  if (a.decoder && !is_eos) event.text = a.stops.Add(a.decoder->Add(token));
  std::string reason;
  if (is_eos || a.stops.stopped()) {
    reason = "stop";
  } else if (a.generated >= a.request.max_tokens ||
             static_cast<int64_t>(a.history.size()) > options_.max_model_len) {
    reason = "length";
  }
  if (!reason.empty() && !a.stops.stopped()) {  // the held-back text ends the output
    if (a.decoder) event.text += a.stops.Add(a.decoder->Finish());
    if (a.stops.stopped()) reason = "stop";
    event.text += a.stops.Flush();
  }
  if (reason.empty()) {
    a.stream->Push(std::move(event));
    return false;
  }
  event.finish_reason = reason;
  End(a, std::move(event));
  return true;
}

void Scheduler::Step(std::vector<std::unique_ptr<Active>>& running) {
  const absl::Time now = absl::Now();
  for (auto& a : running) {
    if (a->stream->cancelled()) {
      Finish(*a, "cancelled");
      a.reset();
    } else if (now >= a->deadline) {
      Finish(*a, "timeout");
      a.reset();
    }
  }
  std::erase(running, nullptr);
  if (running.empty()) return;

  // Every decoding request gets its next token; prompts fill the rest of the step's budget.
  std::vector<Active*> members;
  std::vector<SequenceStep> steps;
  std::vector<Sampler*> samplers;
  std::vector<std::span<const int32_t>> histories;
  std::vector<size_t> chunk;  // prompt tokens each member prefills (0: decoding)
  int64_t budget = options_.max_batch_tokens;
  for (auto& a : running) {
    if (!a->decoding()) continue;
    members.push_back(a.get());
    steps.push_back({std::span<const int32_t>(&a->history.back(), 1), a->cache.get()});
    samplers.push_back(&a->sampler);
    chunk.push_back(0);
    --budget;
  }
  for (auto& a : running) {
    if (a->decoding()) continue;
    const size_t left = a->request.prompt_ids.size() - a->prefilled;
    const size_t n = std::min<size_t>(left, std::max<int64_t>(budget, members.empty() ? 1 : 0));
    if (n == 0) break;
    members.push_back(a.get());
    steps.push_back({std::span<const int32_t>(a->request.prompt_ids).subspan(a->prefilled, n),
                     a->cache.get()});
    samplers.push_back(n == left ? &a->sampler : nullptr);  // only the prompt's last chunk draws
    chunk.push_back(n);
    budget -= static_cast<int64_t>(n);
  }
  for (Active* a : members) histories.push_back(a->history);

  absl::StatusOr<std::vector<int32_t>> tokens =
      engine_.ForwardBatchAndSample(steps, samplers, histories);
  if (!tokens.ok()) {
    spdlog::error("[scheduler] a step of {} requests failed: {}", members.size(),
                  tokens.status().ToString());
    for (Active* a : members) {
      Finish(*a, "", tokens.status());
      a->stream.reset();  // marks it for removal below
    }
  } else {
    for (size_t i = 0; i < members.size(); ++i) {
      Active& a = *members[i];
      if (chunk[i] > 0) {
        a.prefilled += chunk[i];
        if (metrics_) metrics_->PromptTokens(static_cast<int64_t>(chunk[i]));
      }
      if ((*tokens)[i] >= 0 && Accept(a, (*tokens)[i])) a.stream.reset();
    }
  }
  std::erase_if(running, [](const std::unique_ptr<Active>& a) { return a->stream == nullptr; });
}

void Scheduler::PublishQueue(const std::vector<std::unique_ptr<Active>>& running) {
  int64_t cached = 0;
  for (const auto& a : running) cached += a->cache ? a->cache->length() : 0;
  int64_t waiting = 0;
  {
    absl::MutexLock lock(&mu_);
    running_count_ = static_cast<int64_t>(running.size());
    cached_tokens_ = cached;
    waiting = static_cast<int64_t>(queue_.size());
  }
  if (metrics_) {
    const int64_t kv_capacity = engine_.KvCacheCapacityTokens();
    const double capacity = kv_capacity > 0 ? static_cast<double>(kv_capacity)
                                            : static_cast<double>(options_.max_num_seqs) *
                                                  options_.max_model_len;
    metrics_->SetQueue(static_cast<int64_t>(running.size()), waiting, cached / capacity);
  }
}

absl::Status Scheduler::WorkerHealth() const {
  absl::MutexLock lock(&mu_);
  return worker_health_;
}

void Scheduler::CheckWorkers(bool idle) {
  ExpertRings* rings = engine_.experts().rings();
  if (rings == nullptr) return;
  const absl::Time now = absl::Now();
  if (now - last_worker_check_ < options_.worker_check_interval) return;
  last_worker_check_ = now;
  absl::Status first_down;
  for (int i = 0; i < rings->count(); ++i) {
    absl::Status alive = rings->CheckAlive(i);
    if (!alive.ok() && idle && now - last_reattach_ >= absl::Seconds(5)) {
      // A worker that went down may be back (restarted): try to re-attach it now, not on the
      // next request (each try may wait for a connection, hence the spacing).
      last_reattach_ = now;
      if (rings->AttachAll().ok()) alive = rings->CheckAlive(i);
    }
    if (metrics_) metrics_->SetWorkerUp(i, alive.ok());
    if (!alive.ok() && first_down.ok()) first_down = absl::UnavailableError(alive.message());
  }
  absl::MutexLock lock(&mu_);
  worker_health_ = first_down;
}

void Scheduler::Loop() {
  std::vector<std::unique_ptr<Active>> running;
  while (true) {
    CheckWorkers(running.empty());
    Admit(running);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
      if (running.empty()) {
        auto work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return !queue_.empty() || stopping_;
        };
        mu_.AwaitWithTimeout(absl::Condition(&work), absl::Milliseconds(50));
        continue;
      }
    }
    Step(running);
    PublishQueue(running);
  }
  // Stopping: whatever is left ends as cancelled.
  for (auto& a : running) Finish(*a, "cancelled");
  running.clear();
  std::vector<std::unique_ptr<Active>> queued;
  {
    absl::MutexLock lock(&mu_);
    queued.swap(queue_);
    running_count_ = 0;
  }
  for (auto& a : queued) Finish(*a, "cancelled");
}

}  // namespace tandem
