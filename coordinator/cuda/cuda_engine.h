// The GPU backend (an Engine): the same forward pass as CpuEngine with every coordinator op on
// the GPU (embedding, RMSNorm, linears through cuBLAS or a GEMV kernel, RoPE from a precomputed
// table, GQA and absorbed-MLA attention over a paged KV cache, the router, dense and shared-expert
// MLPs, LM head), f32 activations over bf16 / f32 weights. Routed experts go to the
// ExpertExecutor: each MoE layer copies the normalised hidden states, expert ids and routing
// weights to page-locked host memory, and while the executor (CPU threads or NUMA workers) runs,
// the GPU computes the shared experts; the routed result comes back and is added on the GPU.
// Built only with TANDEM_CUDA. One engine thread drives it; its caches are CudaKvCache.
#pragma once

#include <memory>
#include <string>

#include "common/checkpoint.h"
#include "coordinator/cuda/device_weights.h"
#include "coordinator/cuda/paged_kv_cache.h"
#include "coordinator/engine.h"
#include "coordinator/rope.h"
#include "kernels/cuda/linear.h"

namespace tandem::cuda {

struct CudaEngineOptions {
  int device_index = 0;
  int64_t max_model_len = 0;     // positions the RoPE table covers; > 0
  int64_t kv_cache_tokens = 0;   // pool size in tokens; 0: 2 x max_model_len
  int64_t page_size = 64;        // tokens per KV cache page
};

class CudaEngine : public Engine {
 public:
  static absl::StatusOr<std::unique_ptr<CudaEngine>> Create(const ModelConfig& config,
                                                            const Checkpoint& checkpoint,
                                                            std::unique_ptr<ExpertExecutor> experts,
                                                            const CudaEngineOptions& options);
  // The same over weights already in memory (e.g. random ones: coordinator/synthetic_model.h).
  static absl::StatusOr<std::unique_ptr<CudaEngine>> CreateFromWeights(
      const ModelConfig& config, ModelWeights weights, std::unique_ptr<ExpertExecutor> experts,
      const CudaEngineOptions& options);
  ~CudaEngine() override;

  std::unique_ptr<SequenceCache> NewCache(int64_t capacity) override;
  absl::StatusOr<std::vector<float>> Forward(std::span<const int32_t> tokens,
                                             SequenceCache& cache) override;
  absl::Status Prepare(int64_t max_tokens) override;
  const ModelConfig& config() const override { return config_; }
  ExpertExecutor& experts() override { return *experts_; }
  std::string Describe() const override { return describe_; }

 private:
  // Activation buffers of one forward pass, grown to the largest token count seen.
  struct Scratch;

  CudaEngine(const ModelConfig& config, std::unique_ptr<ExpertExecutor> experts);
  absl::Status Init(ModelWeights weights, const CudaEngineOptions& options);
  absl::Status ReserveScratch(int64_t num_tokens);
  // normed -> block, for layer l's attention / MLP over T tokens starting at `start`.
  absl::Status GqaAttention(int64_t l, int64_t num_tokens, int64_t start, CudaKvCache& cache);
  absl::Status MlaAttention(int64_t l, int64_t num_tokens, int64_t start, CudaKvCache& cache);
  absl::Status Mlp(int64_t l, int64_t num_tokens);
  absl::Status DenseMlp(const DeviceMlp& w, const float* x, int64_t num_tokens, float* out);
  absl::Status RoutedExperts(int64_t l, int64_t num_tokens);

  ModelConfig config_;
  std::unique_ptr<ExpertExecutor> experts_;
  Rope rope_;
  std::string describe_;
  int64_t max_model_len_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t copies_done_ = nullptr;
  std::unique_ptr<CudaLinear> linear_;
  DeviceWeights weights_;
  std::shared_ptr<PagedKvPool> pool_;
  DeviceBuffer<float> rope_cos_, rope_sin_;  // [max_model_len x rotary_dim / 2]
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace tandem::cuda
