#include "numa_worker/worker_core.h"

#include <unistd.h>

#include <chrono>

#include "common/checkpoint.h"
#include "common/checkpoint_fingerprint.h"
#include "common/worker_protocol.h"
#include "coordinator/synthetic_model.h"
#include "spdlog/spdlog.h"

namespace tandem {
namespace {

absl::StatusOr<ShardPlan> PlanFromProto(const v1::ShardSpec& spec) {
  ShardPlan plan;
  switch (spec.mode()) {
    case v1::ShardSpec::TENSOR_PARALLEL:
      plan.mode = ShardPlan::Mode::kTensorParallel;
      break;
    case v1::ShardSpec::EXPERT_PARALLEL:
      plan.mode = ShardPlan::Mode::kExpertParallel;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown shard mode ", spec.mode()));
  }
  if (spec.count() < 1 || spec.count() > 4096 || spec.index() >= spec.count()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard index ", spec.index(), " is not in [0, ", spec.count(), ")"));
  }
  plan.index = static_cast<int>(spec.index());
  plan.count = static_cast<int>(spec.count());
  TANDEM_RETURN_IF_ERROR(plan.Validate());
  return plan;
}

std::string DescribePlan(const ShardPlan& p) {
  return absl::StrCat(
      "shard ", p.index, "/", p.count,
      p.mode == ShardPlan::Mode::kTensorParallel ? " tensor-parallel" : " expert-parallel");
}

// Which experts a shard holds and the bytes of one held expert's slice (all held slices of a
// shard have the same shape).
void AccountExperts(const ModelConfig& config, const ShardPlan& plan, size_t weight_bytes,
                    RingLoopConfig* loop) {
  const int64_t num_experts = config.moe.num_experts;
  loop->holds_expert.assign(num_experts, false);
  int64_t held = 0;
  for (int64_t e = 0; e < num_experts; ++e) {
    const bool holds =
        plan.mode == ShardPlan::Mode::kTensorParallel || plan.OwnsExpert(e, num_experts);
    loop->holds_expert[e] = holds;
    held += holds ? 1 : 0;
  }
  const int64_t slices = held * config.NumMoeLayers();
  loop->bytes_per_expert = slices > 0 ? weight_bytes / static_cast<uint64_t>(slices) : 0;
}

}  // namespace

WorkerCore::WorkerCore(WorkerIdentity identity, RingWaitOptions ring_wait)
    : identity_(std::move(identity)), ring_wait_(ring_wait) {}

WorkerCore::~WorkerCore() { StopServing(); }

absl::StatusOr<v1::HelloResponse> WorkerCore::Hello(const v1::HelloRequest& request) const {
  if (request.protocol_version() != kWorkerProtocolVersion) {
    return absl::FailedPreconditionError(absl::StrCat("protocol version mismatch: worker speaks ",
                                                      kWorkerProtocolVersion, ", coordinator sent ",
                                                      request.protocol_version()));
  }
  spdlog::info("hello from coordinator '{}'", request.coordinator_id());
  v1::HelloResponse response;
  response.set_protocol_version(kWorkerProtocolVersion);
  response.set_worker_id(identity_.worker_id);
  response.set_pid(static_cast<int32_t>(getpid()));
  v1::Topology* topology = response.mutable_topology();
  topology->set_numa_node(identity_.binding.numa_node);
  for (int c : identity_.binding.cpus) topology->add_cpus(c);
  topology->set_threads(identity_.binding.threads);
  topology->set_memory_bytes(identity_.binding.memory_bytes);
  response.set_isa(std::string(CpuKernelName(identity_.cpu_kernel)));
  return response;
}

absl::StatusOr<v1::LoadShardResponse> WorkerCore::LoadShard(const v1::LoadShardRequest& request) {
  TANDEM_ASSIGN_OR_RETURN(
      const ExpertFormat format,
      ParseExpertFormat(request.expert_dtype().empty() ? "bf16" : request.expert_dtype(),
                        request.int4_group_size()));
  const bool synthetic = request.has_synthetic();
  if (request.checkpoint_path().empty() && !synthetic)
    return absl::InvalidArgumentError("LoadShard: checkpoint_path is empty");
  TANDEM_ASSIGN_OR_RETURN(const ShardPlan plan, PlanFromProto(request.shard()));
  const std::string dir = synthetic ? absl::StrCat("synthetic ", request.synthetic().preset())
                                    : request.checkpoint_path();
  const std::string config_path =
      request.config_path().empty() ? dir + "/config.json" : request.config_path();

  absl::MutexLock load_lock(&load_mu_);
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<Checkpoint> checkpoint;
  ModelConfig config;
  std::string fingerprint;
  if (synthetic) {
    const v1::SyntheticModel& m = request.synthetic();
    TANDEM_ASSIGN_OR_RETURN(config, SyntheticConfig(m.preset(), m.layers()));
    fingerprint = SyntheticFingerprint(m.preset(), m.layers(), m.seed());
  } else {
    TANDEM_ASSIGN_OR_RETURN(checkpoint, Checkpoint::Open(dir));
    TANDEM_ASSIGN_OR_RETURN(config, LoadModelConfig(dir, request.config_path()));
    TANDEM_ASSIGN_OR_RETURN(fingerprint, CheckpointFingerprint(*checkpoint, config_path));
  }
  if (!request.checkpoint_fingerprint().empty() &&
      request.checkpoint_fingerprint() != fingerprint) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint fingerprint mismatch: the worker read ", fingerprint, " from ",
                     dir, " (config ", config_path, "), the coordinator expects ",
                     request.checkpoint_fingerprint(), "; do both see the same model files?"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (loaded_ != nullptr) {
      const ShardPlan& have = loaded_->plan;
      if (loaded_->fingerprint == fingerprint && have.mode == plan.mode &&
          have.index == plan.index && have.count == plan.count && loaded_->format == format) {
        spdlog::info("LoadShard: {} of {} already loaded", DescribePlan(plan), dir);
        return loaded_->response;
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "this worker already holds ", DescribePlan(have), " (", ExpertFormatName(loaded_->format),
          ") of ", loaded_->checkpoint_dir, " (fingerprint ", loaded_->fingerprint, "); refusing ",
          DescribePlan(plan), " of ", dir, " (", ExpertFormatName(format), ", fingerprint ",
          fingerprint, "): restart the worker to load another"));
    }
  }
  if (config.moe.num_experts < 1 || config.NumMoeLayers() < 1)
    return absl::FailedPreconditionError(absl::StrCat(dir, ": the model has no routed experts"));

  const ExpertShardOptions options{identity_.cpu_kernel, format, identity_.schedule};
  // This is a gRPC thread: give its OpenMP team the worker's cores for the build.
  ScopedOpenMpTeam team(identity_.binding);
  if (!team.status().ok())
    spdlog::warn("LoadShard: OpenMP threads not pinned: {}", team.status().ToString());
  std::unique_ptr<ExpertShard> shard;
  if (synthetic) {
    TANDEM_ASSIGN_OR_RETURN(
        shard, ExpertShard::FromSource(
                   config, RandomExpertSource(config, request.synthetic().seed(), plan), options,
                   plan));
  } else {
    TANDEM_ASSIGN_OR_RETURN(shard, ExpertShard::Load(config, *checkpoint, plan, options));
  }
  checkpoint.reset();  // only the shard's slice stays in memory

  auto loaded = std::make_unique<Loaded>();
  loaded->checkpoint_dir = dir;
  loaded->fingerprint = fingerprint;
  loaded->plan = plan;
  loaded->format = format;
  loaded->config = std::move(config);
  loaded->shard = std::move(shard);
  loaded->response.set_checkpoint_fingerprint(fingerprint);
  loaded->response.set_expert_bytes(loaded->shard->weight_bytes());
  loaded->response.set_moe_layers(static_cast<uint32_t>(loaded->config.NumMoeLayers()));
  RingLoopConfig& t = loaded->loop_template;
  t.shard = loaded->shard.get();
  t.config = &loaded->config;
  AccountExperts(loaded->config, plan, loaded->shard->weight_bytes(), &t);
  t.binding = identity_.binding;
  t.counters = &counters_;
  t.wait = ring_wait_;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("loaded {} of {} (fingerprint {}): {:.1f} MiB of experts, {} MoE layers, {:.2f} s",
               DescribePlan(plan), dir, fingerprint,
               loaded->shard->weight_bytes() / (1024.0 * 1024.0), loaded->config.NumMoeLayers(),
               seconds);
  absl::MutexLock lock(&mu_);
  loaded_ = std::move(loaded);
  return loaded_->response;
}

absl::Status WorkerCore::AttachRing(const v1::AttachRingRequest& request) {
  RingLoopConfig loop_config;
  int64_t hidden_size = 0, top_k = 0;
  {
    absl::MutexLock lock(&mu_);
    if (loaded_ == nullptr)
      return absl::FailedPreconditionError("AttachRing before LoadShard: no shard is loaded");
    loop_config = loaded_->loop_template;
    hidden_size = loaded_->config.hidden_size;
    top_k = loaded_->config.moe.top_k;
  }
  RingSpec spec;
  spec.name = request.name();
  spec.size = request.size_bytes();
  spec.layout_version = request.layout_version();
  spec.magic = request.magic();
  spec.capacity.depth = request.capacity().depth();
  spec.capacity.max_tokens = request.capacity().max_tokens();
  spec.capacity.hidden_size = request.capacity().hidden_size();
  spec.capacity.max_top_k = request.capacity().max_top_k();
  spec.capacity.dtype = static_cast<RingDType>(request.capacity().dtype());
  if (spec.capacity.hidden_size != hidden_size) {
    return absl::InvalidArgumentError(absl::StrCat("ring ", spec.name, ": hidden_size ",
                                                   spec.capacity.hidden_size,
                                                   " does not match the model's ", hidden_size));
  }
  if (spec.capacity.max_top_k < top_k) {
    return absl::InvalidArgumentError(absl::StrCat("ring ", spec.name, ": max_top_k ",
                                                   spec.capacity.max_top_k,
                                                   " is below the model's top-k ", top_k));
  }
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<RingRegion> region, RingRegion::Open(spec));
  loop_config.wait = ApplyPolling(loop_config.wait, {request.spin_us(), request.max_sleep_us()});

  absl::MutexLock lock(&mu_);
  if (stopped_) return absl::UnavailableError("the worker is shutting down");
  if (loop_ != nullptr) {
    spdlog::info("replacing ring {} with {}", loop_->ring_name(), spec.name);
    loop_.reset();  // stops and joins the old loop, unmaps its region
  }
  loop_ = RingLoop::Start(std::move(region), std::move(loop_config));
  return absl::OkStatus();
}

v1::StatsResponse WorkerCore::Stats() const {
  v1::StatsResponse r;
  r.set_requests(counters_.requests.load(std::memory_order_relaxed));
  r.set_tokens(counters_.tokens.load(std::memory_order_relaxed));
  r.set_busy_ns(counters_.busy_ns.load(std::memory_order_relaxed));
  r.set_expert_bytes_read(counters_.expert_bytes_read.load(std::memory_order_relaxed));
  r.set_errors(counters_.errors.load(std::memory_order_relaxed));
  return r;
}

void WorkerCore::StopServing() {
  std::unique_ptr<RingLoop> loop;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    loop = std::move(loop_);
  }
  loop.reset();
}

bool WorkerCore::serving_ring() const {
  absl::MutexLock lock(&mu_);
  return loop_ != nullptr && loop_->serving();
}

}  // namespace tandem
