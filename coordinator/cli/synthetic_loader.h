// A model of a preset's shapes with random weights built in memory (no files), for `tandem bench
// --synthetic` and `tandem serve --synthetic`: the routed experts in this process, or in worker
// processes that each build their own slice of the same random experts (LoadShard with a
// synthetic model); the engine on the device the load options ask for. Fails early, naming the
// --layers that would fit, when the experts cannot fit in memory. Engine thread.
#pragma once

#include <memory>
#include <string>

#include "coordinator/engine.h"
#include "coordinator/loaded_model.h"
#include "coordinator/remote_expert_executor.h"

namespace tandem::cli {

struct SyntheticRequest {
  std::string preset;
  int64_t layers = 0;    // 0: all of the preset's
  uint64_t seed = 1;
  int64_t max_tokens = 0;  // the longest sequence: the context length and KV cache are sized by it
  int64_t kv_cache_tokens = 0;  // GPU KV cache in tokens (0: room for two max_tokens sequences)
};

struct SyntheticModel {
  ModelConfig config;
  std::unique_ptr<LocalWorkers> spawned;   // declared before the engine: outlives its executor
  std::unique_ptr<Engine> engine;
  RemoteExpertExecutor* workers = nullptr;  // the engine's executor when remote; else null
  double bytes_per_token = 0;  // routed-expert bytes one decode token reads
  double held_bytes = 0;       // all routed experts, packed
  double expert_build_s = 0, engine_build_s = 0;
  std::string experts;         // the executor's Describe(), from before the engine took it
};

absl::StatusOr<SyntheticModel> LoadSyntheticModel(const SyntheticRequest& request,
                                                  const LoadOptions& load);

// Routed-expert bytes one decode token reads in `format` (top_k experts of every MoE layer),
// estimated from the shapes: what a worker's packed shard holds, give or take alignment.
double EstimatedExpertBytesPerToken(const ModelConfig& config, const ExpertFormat& format);

}  // namespace tandem::cli
