// A model directory opened for serving: config, tokenizer, checkpoint and the engine (CPU or
// CUDA backend) with its expert executor. Created once at start-up; then driven by one engine thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "common/model_config.h"
#include "common/tokenizer.h"
#include "coordinator/cpu_engine.h"
#include "coordinator/engine.h"
#include "coordinator/local_workers.h"
#include "coordinator/remote_expert_executor.h"

namespace tandem {

struct LoadOptions {
  std::string config_path;    // default: DIR/config.json
  int64_t max_model_len = 0;  // 0: max_position_embeddings
  bool load_tokenizer = true;
  // Where the routed experts run: -1 = auto (one worker process per NUMA node), 0 = in this
  // process, N > 0 = N worker processes over this machine's cores (split into N groups when the
  // machine has fewer NUMA nodes). Ignored when worker_addrs is given.
  int workers = 0;
  std::vector<std::string> worker_addrs;  // gRPC addresses of workers already running
  // How routed experts are split across workers: each expert's intermediate dimension
  // (tensor-parallel, the default) or whole experts (expert-parallel).
  ShardPlan::Mode shard_mode = ShardPlan::Mode::kTensorParallel;
  // Expert kernel and task schedule of the in-process executor and of spawned workers
  // (--cpu-kernel, --schedule), and the format every executor packs experts in (--expert-dtype).
  CpuKernel cpu_kernel = CpuKernel::kAuto;
  MoeSchedule schedule = MoeSchedule::kDynamic;
  ExpertFormat expert_format;
  // Where the coordinator's ops run (--device): auto picks CUDA when this build has it and a GPU
  // is visible. kv_cache_tokens sizes the GPU backend's paged KV cache (0: from free memory).
  Device device = Device::kAuto;
  int64_t kv_cache_tokens = 0;
  int64_t kv_cache_sequences = 2;  // full-length sequences an automatic size makes room for
  // GPU backend: replay decode steps as CUDA graphs (--cuda-graph), and how the GPU waits for
  // NUMA workers on their rings (--ring-wait memop|host-func; coordinator/cuda/ring_handoff.h).
  bool cuda_graph = true;
  std::string ring_wait = "memop";
};

struct LoadedModel {
  std::string dir;
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
  std::unique_ptr<Tokenizer> tokenizer;  // null when not requested
  // Spawned worker processes (declared before the engine, so they outlive its executor).
  std::unique_ptr<LocalWorkers> local_workers;
  std::unique_ptr<Engine> engine;
  int64_t max_model_len = 0;
};

absl::StatusOr<LoadedModel> LoadModel(const std::string& dir, const LoadOptions& options);

// --device auto|cpu|cuda to the backend this process can run (FailedPrecondition for cuda
// without a visible GPU or without the CUDA backend in this build).
absl::StatusOr<Device> ResolveDevice(Device requested);

// The NUMA workers `options` asks for (options.workers spawned here into *spawned, or the ones
// already running at options.worker_addrs) brought up with `shard` (its plan mode and format
// are set from options), with rings sized for `config` and polled when `device` is CUDA.
absl::StatusOr<std::unique_ptr<RemoteExpertExecutor>> ConnectWorkers(
    const ModelConfig& config, int64_t max_model_len, const LoadOptions& options, Device device,
    ShardRequest shard, std::unique_ptr<LocalWorkers>* spawned);

}  // namespace tandem
