#include "coordinator/remote_expert_executor.h"

#include <algorithm>
#include <thread>

#include "spdlog/spdlog.h"

namespace tandem {

absl::StatusOr<std::unique_ptr<WorkerClient>> RemoteExpertExecutor::BringUp(
    const WorkerEndpoint& endpoint, int count, absl::Duration connect_timeout) {
  TANDEM_ASSIGN_OR_RETURN(auto client, WorkerClient::Connect(endpoint, connect_timeout));
  ShardRequest shard = options_.shard;
  shard.plan.index = endpoint.index;
  shard.plan.count = count;
  TANDEM_RETURN_IF_ERROR(client->LoadShard(shard, options_.load_timeout));
  TANDEM_RETURN_IF_ERROR(client->AttachRing(options_.ring, options_.polling));
  spdlog::info("[coordinator] {} ready: pid {}, isa {}", endpoint.Name(), client->hello().pid(),
               client->hello().isa());
  return client;
}

absl::StatusOr<std::unique_ptr<RemoteExpertExecutor>> RemoteExpertExecutor::Create(
    std::vector<WorkerEndpoint> endpoints, RemoteExecutorOptions options) {
  if (endpoints.empty()) return absl::InvalidArgumentError("no workers to connect to");
  std::unique_ptr<RemoteExpertExecutor> ex(new RemoteExpertExecutor(std::move(options)));
  ex->endpoints_ = std::move(endpoints);
  const int count = static_cast<int>(ex->endpoints_.size());
  // All workers load at once: each reads or builds its own slice of the experts.
  std::vector<absl::StatusOr<std::unique_ptr<WorkerClient>>> up;
  for (int i = 0; i < count; ++i) up.emplace_back(absl::UnknownError("not brought up"));
  {
    std::vector<std::thread> loaders;
    for (int i = 0; i < count; ++i) {
      loaders.emplace_back([&, i] {
        up[i] = ex->BringUp(ex->endpoints_[i], count, ex->options_.connect_timeout);
      });
    }
    for (std::thread& t : loaders) t.join();
  }
  for (auto& client : up) {
    TANDEM_RETURN_IF_ERROR(client.status());
    ex->clients_.push_back(std::move(*client));
  }
  ++ex->generation_;
  return ex;
}

void RemoteExpertExecutor::UpdateEndpoint(const WorkerEndpoint& endpoint) {
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (endpoints_[i].index == endpoint.index) {
      endpoints_[i] = endpoint;
      Detach(static_cast<int>(i));  // re-attached on the next call
    }
  }
}

RemoteExpertExecutor::~RemoteExpertExecutor() {
  for (int i = 0; i < count(); ++i) Detach(i);
}

void RemoteExpertExecutor::Detach(int i) {
  if (release_hook_ && clients_[i] && clients_[i]->region()) release_hook_(clients_[i]->region());
  clients_[i].reset();
  ++generation_;
}

absl::Status RemoteExpertExecutor::CheckAlive(int i) {
  if (!clients_[i]) return absl::UnavailableError(absl::StrCat(endpoints_[i].Name(), " is down"));
  return clients_[i]->CheckAlive();
}

absl::Status RemoteExpertExecutor::AttachAll() {
  const int count = static_cast<int>(clients_.size());
  for (int i = 0; i < count; ++i) {
    if (clients_[i]) continue;
    auto client = BringUp(endpoints_[i], count, options_.reattach_timeout);
    if (!client.ok()) {
      return absl::UnavailableError(absl::StrCat(endpoints_[i].Name(), " is down and could not be ",
                                                 "re-attached: ", client.status().message()));
    }
    clients_[i] = std::move(*client);
    ++generation_;
  }
  return absl::OkStatus();
}

std::vector<WorkerClient*> RemoteExpertExecutor::clients() {
  std::vector<WorkerClient*> out;
  for (auto& c : clients_) out.push_back(c.get());
  return out;
}

absl::Status RemoteExpertExecutor::Run(const MoeBatch& batch, float* out) {
  // Requests larger than a ring slot go in slices of max_tokens tokens.
  const int64_t max_tokens = options_.ring.max_tokens, h = options_.ring.hidden_size;
  for (int64_t begin = 0; begin < batch.num_tokens || begin == 0; begin += max_tokens) {
    MoeBatch slice = batch;
    slice.num_tokens = std::min(max_tokens, batch.num_tokens - begin);
    slice.hidden = batch.hidden + begin * h;
    slice.expert_ids = batch.expert_ids + begin * batch.top_k;
    slice.weights = batch.weights + begin * batch.top_k;
    TANDEM_RETURN_IF_ERROR(RunSlice(slice, out + begin * h));
    if (batch.num_tokens == 0) break;
  }
  return absl::OkStatus();
}

absl::Status RemoteExpertExecutor::RunSlice(const MoeBatch& batch, float* out) {
  const int count = static_cast<int>(clients_.size());
  TANDEM_RETURN_IF_ERROR(AttachAll());
  std::vector<uint64_t> seqs(count);
  absl::Status failure;
  int submitted = 0;
  for (; submitted < count; ++submitted) {
    auto seq = clients_[submitted]->Submit(batch);
    if (!seq.ok()) {
      failure = seq.status();
      break;
    }
    seqs[submitted] = *seq;
  }
  const int64_t n = batch.num_tokens * options_.ring.hidden_size;
  partial_.resize(n);
  // Collect every submitted request, even after a failure, so the rings stay in step.
  for (int i = 0; i < submitted; ++i) {
    absl::Status s = clients_[i]->Wait(seqs[i], i == 0 ? out : partial_.data(), options_.call_timeout);
    if (!s.ok()) {
      if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsDataLoss(s)) {
        spdlog::error("[coordinator] {}", std::string(s.message()));
        Detach(i);  // the ring is unusable; re-attach before the next call
        s = absl::UnavailableError(s.message());
      }
      if (failure.ok()) failure = s;
      continue;
    }
    if (i > 0)
      for (int64_t j = 0; j < n; ++j) out[j] += partial_[j];
  }
  return failure;
}

std::string RemoteExpertExecutor::Describe() const {
  return absl::StrCat(clients_.size(), " NUMA worker process(es), ",
                      options_.shard.plan.mode == ShardPlan::Mode::kTensorParallel
                          ? "tensor-parallel"
                          : "expert-parallel");
}

}  // namespace tandem
