#include "coordinator/loaded_model.h"

#include <algorithm>

#include "common/checkpoint_fingerprint.h"
#include "coordinator/in_process_expert_executor.h"
#include "coordinator/remote_expert_executor.h"
#ifdef TANDEM_HAVE_CUDA
#include "coordinator/cuda/cuda_engine.h"
#include "coordinator/cuda/ring_handoff.h"
#include "kernels/cuda/device_info.h"
#endif
#include "spdlog/spdlog.h"

namespace tandem {
namespace {

absl::StatusOr<std::unique_ptr<ExpertExecutor>> CreateExpertExecutor(LoadedModel& m,
                                                                     const LoadOptions& options,
                                                                     Device device) {
  if (options.worker_addrs.empty() && options.workers == 0) {
    TANDEM_ASSIGN_OR_RETURN(auto local,
                            InProcessExpertExecutor::Create(
                                m.config, *m.checkpoint,
                                {options.cpu_kernel, options.expert_format, options.schedule}));
    return std::unique_ptr<ExpertExecutor>(std::move(local));
  }
  ShardRequest shard;
  shard.model_dir = m.dir;
  shard.config_path = options.config_path;
  const std::string config_path =
      options.config_path.empty() ? m.dir + "/config.json" : options.config_path;
  TANDEM_ASSIGN_OR_RETURN(shard.fingerprint, CheckpointFingerprint(*m.checkpoint, config_path));
  TANDEM_ASSIGN_OR_RETURN(auto executor, ConnectWorkers(m.config, m.max_model_len, options,
                                                        device, shard, &m.local_workers));
  return std::unique_ptr<ExpertExecutor>(std::move(executor));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RemoteExpertExecutor>> ConnectWorkers(
    const ModelConfig& config, int64_t max_model_len, const LoadOptions& options, Device device,
    ShardRequest shard, std::unique_ptr<LocalWorkers>* spawned) {
  std::vector<WorkerEndpoint> endpoints;
  if (!options.worker_addrs.empty()) {
    for (size_t i = 0; i < options.worker_addrs.size(); ++i)
      endpoints.push_back({static_cast<int>(i), options.worker_addrs[i], 0});
  } else {
    const std::vector<std::string> worker_args = {
        "--cpu-kernel", std::string(CpuKernelName(options.cpu_kernel)), "--schedule",
        std::string(MoeScheduleName(options.schedule))};
    TANDEM_ASSIGN_OR_RETURN(*spawned, LocalWorkers::Spawn(options.workers, "", worker_args));
    endpoints = (*spawned)->endpoints();
  }
  RemoteExecutorOptions remote;
  remote.shard = std::move(shard);
  remote.shard.plan.mode = options.shard_mode;
  remote.shard.format = options.expert_format;
  remote.ring.depth = 2;
  remote.ring.max_tokens = static_cast<uint32_t>(std::min<int64_t>(512, max_model_len));
  remote.ring.hidden_size = static_cast<uint32_t>(config.hidden_size);
  remote.ring.max_top_k = static_cast<uint32_t>(config.moe.top_k);
#ifdef TANDEM_HAVE_CUDA
  if (device == Device::kCuda) remote.polling = cuda::kRingPolling;  // the GPU cannot wake them
#endif
  return RemoteExpertExecutor::Create(std::move(endpoints), std::move(remote));
}

absl::StatusOr<Device> ResolveDevice(Device requested) {
  if (requested == Device::kCpu) return Device::kCpu;
#ifdef TANDEM_HAVE_CUDA
  TANDEM_ASSIGN_OR_RETURN(std::vector<CudaDeviceInfo> gpus, ListCudaDevices());
  if (!gpus.empty()) return Device::kCuda;
  if (requested == Device::kCuda)
    return absl::FailedPreconditionError("--device cuda: no CUDA device is visible");
#else
  if (requested == Device::kCuda) {
    return absl::FailedPreconditionError(
        "--device cuda: this build has no CUDA backend (configure with -DTANDEM_CUDA=ON where "
        "nvcc is installed)");
  }
#endif
  return Device::kCpu;
}

namespace {

absl::StatusOr<std::unique_ptr<Engine>> CreateEngine(const LoadedModel& m,
                                                     const LoadOptions& options, Device device,
                                                     std::unique_ptr<ExpertExecutor> experts) {
#ifdef TANDEM_HAVE_CUDA
  if (device == Device::kCuda) {
    cuda::CudaEngineOptions cuda_options;
    cuda_options.max_model_len = m.max_model_len;
    cuda_options.kv_cache_tokens = options.kv_cache_tokens;
    cuda_options.kv_cache_sequences = options.kv_cache_sequences;
    cuda_options.cuda_graph = options.cuda_graph;
    TANDEM_ASSIGN_OR_RETURN(cuda_options.ring_wait, cuda::ParseRingWait(options.ring_wait));
    TANDEM_ASSIGN_OR_RETURN(auto engine, cuda::CudaEngine::Create(m.config, *m.checkpoint,
                                                                  std::move(experts), cuda_options));
    return std::unique_ptr<Engine>(std::move(engine));
  }
#endif
  TANDEM_ASSIGN_OR_RETURN(auto engine, CpuEngine::Create(m.config, *m.checkpoint, std::move(experts)));
  return std::unique_ptr<Engine>(std::move(engine));
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModel(const std::string& dir, const LoadOptions& options) {
  LoadedModel m;
  m.dir = dir;
  TANDEM_ASSIGN_OR_RETURN(m.config, LoadModelConfig(dir, options.config_path));
  m.max_model_len = m.config.max_position_embeddings;
  if (options.max_model_len > 0) {
    if (options.max_model_len > m.config.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--max-model-len ", options.max_model_len,
          " exceeds the model's max_position_embeddings ", m.config.max_position_embeddings));
    }
    m.max_model_len = options.max_model_len;
  }
  if (options.load_tokenizer) {
    TANDEM_ASSIGN_OR_RETURN(m.tokenizer, Tokenizer::FromDirectory(dir));
    if (m.tokenizer->vocab_size() > m.config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, ": tokenizer has ", m.tokenizer->vocab_size(),
                       " tokens but the model's vocab_size is ", m.config.vocab_size));
    }
  }
  TANDEM_ASSIGN_OR_RETURN(m.checkpoint, Checkpoint::Open(dir));
  TANDEM_ASSIGN_OR_RETURN(const Device device, ResolveDevice(options.device));
  TANDEM_ASSIGN_OR_RETURN(auto experts, CreateExpertExecutor(m, options, device));
  spdlog::info("[coordinator] {}: {} layers ({} MoE), {} experts top-{}, experts {}", dir,
               m.config.num_layers, m.config.NumMoeLayers(), m.config.moe.num_experts,
               m.config.moe.top_k, experts->Describe());
  TANDEM_ASSIGN_OR_RETURN(m.engine, CreateEngine(m, options, device, std::move(experts)));
  spdlog::info("[coordinator] engine: {}", m.engine->Describe());
  return m;
}

}  // namespace tandem
