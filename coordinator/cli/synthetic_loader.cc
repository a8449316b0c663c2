#include "coordinator/cli/synthetic_loader.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_format.h"
#include "bench/moe_workload.h"
#include "coordinator/cpu_engine.h"
#include "coordinator/synthetic_model.h"
#include "kernels/cpu/moe_format.h"
#ifdef TANDEM_HAVE_CUDA
#include "coordinator/cuda/cuda_engine.h"
#include "kernels/cuda/device_info.h"
#endif

namespace tandem::cli {
namespace {

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

absl::StatusOr<std::unique_ptr<Engine>> BuildEngine(const ModelConfig& config,
                                                    const LoadOptions& load,
                                                    std::unique_ptr<ExpertExecutor> experts,
                                                    const SyntheticRequest& r) {
  ModelWeights weights = RandomModelWeights(config, r.seed);
  const Device device = load.device;
#ifdef TANDEM_HAVE_CUDA
  if (device != Device::kCpu) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<CudaDeviceInfo> gpus, ListCudaDevices());
    if (!gpus.empty()) {
      cuda::CudaEngineOptions options;
      options.max_model_len = r.max_tokens;
      options.kv_cache_tokens = r.kv_cache_tokens > 0 ? r.kv_cache_tokens : 2 * r.max_tokens;
      options.cuda_graph = load.cuda_graph;
      TANDEM_ASSIGN_OR_RETURN(options.ring_wait, cuda::ParseRingWait(load.ring_wait));
      TANDEM_ASSIGN_OR_RETURN(auto engine, cuda::CudaEngine::CreateFromWeights(
                                               config, std::move(weights), std::move(experts),
                                               options));
      return std::unique_ptr<Engine>(std::move(engine));
    }
    if (device == Device::kCuda)
      return absl::FailedPreconditionError("--device cuda: no CUDA device is visible");
  }
#else
  if (device == Device::kCuda)
    return absl::FailedPreconditionError("--device cuda: this build has no CUDA backend");
#endif
  return std::unique_ptr<Engine>(
      CpuEngine::FromWeights(config, std::move(weights), std::move(experts)));
}

}  // namespace

double EstimatedExpertBytesPerToken(const ModelConfig& config, const ExpertFormat& format) {
  return bench::PackedBytesPerWeight(format) * 3.0 * config.hidden_size *
         config.moe.expert_intermediate_size * config.moe.top_k * config.NumMoeLayers();
}

absl::StatusOr<SyntheticModel> LoadSyntheticModel(const SyntheticRequest& r,
                                                  const LoadOptions& load) {
  if (r.max_tokens < 1) return absl::InvalidArgumentError("the synthetic model needs max_tokens");
  const bool remote = load.workers != 0 || !load.worker_addrs.empty();
  TANDEM_ASSIGN_OR_RETURN(ModelConfig config, SyntheticConfig(r.preset, r.layers));
  config.max_position_embeddings = std::max(config.max_position_embeddings, r.max_tokens);

  // Fail early when the packed experts cannot fit in memory.
  const ExpertFormat& format = load.expert_format;
  const double bytes_per_weight = bench::PackedBytesPerWeight(format);
  const double expert_weights =
      3.0 * config.hidden_size * config.moe.expert_intermediate_size;
  const double per_layer = config.moe.num_experts * expert_weights * bytes_per_weight;
  const double needed = config.NumMoeLayers() * per_layer;
  const double available = static_cast<double>(bench::MemAvailableBytes());
  if (available > 0 && needed > 0.85 * available) {
    const int64_t fit = static_cast<int64_t>(0.85 * available / per_layer);
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s with %d MoE layers of %s experts needs %.1f GB, %.1f GB are available: pass "
        "--layers with at most ~%d MoE layers",
        r.preset, config.NumMoeLayers(), ExpertFormatName(format), needed / 1e9, available / 1e9,
        std::max<int64_t>(fit, 0)));
  }

  auto start = std::chrono::steady_clock::now();
  // The routed experts: in this process, or in worker processes that each build their slice of
  // the same random experts (LoadShard with a synthetic model).
  SyntheticModel m;
  std::unique_ptr<ExpertExecutor> executor;
  m.held_bytes = needed;
  m.bytes_per_token = EstimatedExpertBytesPerToken(config, format);
  if (remote) {
    ShardRequest shard;
    shard.synthetic_preset = r.preset;
    shard.synthetic_layers = r.layers;
    shard.synthetic_seed = r.seed;
    shard.fingerprint = SyntheticFingerprint(r.preset, r.layers, r.seed);
    TANDEM_ASSIGN_OR_RETURN(auto connected,
                            ConnectWorkers(config, r.max_tokens, load, load.device, shard,
                                           &m.spawned));
    m.workers = connected.get();
    executor = std::move(connected);
  } else {
    TANDEM_ASSIGN_OR_RETURN(auto local, RandomExpertExecutor(
                                            config, {load.cpu_kernel, format, load.schedule},
                                            r.seed));
    int64_t first_moe = 0;
    while (!config.layer_is_moe[first_moe]) ++first_moe;
    // The in-process shard knows its exact packed size.
    m.bytes_per_token = static_cast<double>(local->shard().expert_bytes(first_moe, 0)) *
                        config.moe.top_k * config.NumMoeLayers();
    m.held_bytes = static_cast<double>(local->shard().weight_bytes());
    executor = std::move(local);
  }
  m.expert_build_s = Since(start);
  m.experts = executor->Describe();
  start = std::chrono::steady_clock::now();
  TANDEM_ASSIGN_OR_RETURN(m.engine, BuildEngine(config, load, std::move(executor), r));
  m.engine_build_s = Since(start);
  m.config = std::move(config);
  return m;
}

}  // namespace tandem::cli
