// The GPU backend (an Engine): the same forward pass as CpuEngine with every coordinator op on
// the GPU (embedding, RMSNorm, linears through cuBLAS or a GEMV kernel, RoPE from a precomputed
// table, GQA and absorbed-MLA attention over a paged KV cache, the router, dense and shared-expert
// MLPs, LM head, token sampling), f32 activations over bf16 / f32 weights.
//
// Routed experts, while the GPU computes the shared experts:
//   * steps that fit a ring slot (decode, prefills up to 512 tokens): straight through the rings
//     (ring_handoff.h): the NUMA workers' rings, or for an in-process executor a ring that a
//     thread of its own serves (coordinator/local_ring.h). The host does not wait in between.
//   * larger steps: the inputs go to page-locked memory, the host runs ExpertExecutor::Run and
//     copies the result back, layer by layer.
// So a decode step (up to kMaxGraphTokens tokens) is captured once as a CUDA graph per (token
// count, attention split count, ring generation) and replayed (--cuda-graph on). Every step's first position,
// token ids and block table go to the GPU in one upload that the kernels read, so a replay needs
// nothing else. Built only with TANDEM_CUDA. One engine thread drives it; its caches are
// CudaKvCache.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "common/checkpoint.h"
#include "coordinator/cuda/device_weights.h"
#include "coordinator/cuda/gpu_sampler.h"
#include "coordinator/cuda/paged_kv_cache.h"
#include "coordinator/cuda/ring_handoff.h"
#include "coordinator/engine.h"
#include "coordinator/local_ring.h"
#include "coordinator/rope.h"
#include "kernels/cuda/linear.h"

namespace tandem::cuda {

struct CudaEngineOptions {
  int device_index = 0;
  int64_t max_model_len = 0;     // positions the RoPE table covers; > 0
  int64_t kv_cache_tokens = 0;   // pool size in tokens; 0: kv_cache_sequences x max_model_len,
                                 // at most half the free GPU memory
  int64_t kv_cache_sequences = 2;
  int64_t page_size = 64;        // tokens per KV cache page
  bool cuda_graph = true;        // replay decode steps as CUDA graphs
  RingWait ring_wait = RingWait::kMemOp;  // how the GPU waits for the experts' answers
};

// Single-sequence steps of up to this many tokens are captured as CUDA graphs.
inline constexpr int64_t kMaxGraphTokens = 4;
// Sequences one step may hold (the step upload is sized for them).
inline constexpr int64_t kMaxStepSequences = 256;

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
  absl::StatusOr<int32_t> ForwardAndSample(std::span<const int32_t> tokens, SequenceCache& cache,
                                           Sampler& sampler,
                                           std::span<const int32_t> history) override;
  // Several sequences in one step: linears, router, shared and routed experts and the LM head
  // over all their tokens at once; RoPE, cache writes and attention per sequence. Single-sequence
  // steps replay CUDA graphs; batched ones are enqueued directly. ForwardBatchAndSample draws
  // each sequence's token on the GPU.
  absl::StatusOr<std::vector<std::vector<float>>> ForwardBatch(
      std::span<const SequenceStep> steps) override;
  absl::StatusOr<std::vector<int32_t>> ForwardBatchAndSample(
      std::span<const SequenceStep> steps, std::span<Sampler* const> samplers,
      std::span<const std::span<const int32_t>> histories) override;
  absl::Status Prepare(int64_t max_tokens) override;
  int64_t KvCacheCapacityTokens() const override {
    return pool_->num_pages() * pool_->page_size();
  }
  int64_t KvCachePageTokens() const override { return pool_->page_size(); }
  const ModelConfig& config() const override { return config_; }
  ExpertExecutor& experts() override { return *experts_; }
  std::string Describe() const override { return describe_; }

 private:
  // Activation buffers of one forward pass, grown to the largest token count seen.
  struct Scratch;
  // One sequence of a step: rows [offset, offset + count) of the step's tokens, at positions
  // [start, start + count) of `cache`.
  struct Segment {
    int64_t offset = 0, count = 0, start = 0;
    CudaKvCache* cache = nullptr;
  };
  // What one step reads from the device besides the weights: `tokens` rows over one or more
  // sequences; `use_rings`: routed experts through the rings.
  struct Step {
    int64_t tokens = 0;
    std::vector<Segment> segments;
    bool use_rings = false;
  };
  using GraphKey = std::tuple<int64_t, int64_t, uint64_t>;  // tokens, splits, ring generation

  CudaEngine(const ModelConfig& config, std::unique_ptr<ExpertExecutor> experts);
  absl::Status Init(ModelWeights weights, const CudaEngineOptions& options);
  absl::Status ReserveScratch(int64_t num_tokens);
  // Room in `last` / `logits` for the last rows of `sequences` sequences.
  absl::Status ReserveLogits(int64_t sequences);
  // Everything of one forward pass after the step upload, enqueued on stream_ (or captured).
  absl::Status EnqueueForward(const Step& step);
  // Enqueues `step` directly or replays (capturing first) its graph.
  absl::Status RunStep(const Step& step);
  // One forward pass of `steps` (validated here), with `enqueue_tail` (what to do with the
  // logits, [sequences x vocab] on the device) enqueued behind it; returns when the GPU has
  // finished both.
  absl::Status RunForward(std::span<const SequenceStep> steps,
                          const std::function<absl::Status()>& enqueue_tail);
  void DropGraphs();
  // normed -> block, for layer l's attention / MLP.
  absl::Status GqaAttention(int64_t l, const Step& step);
  absl::Status MlaAttention(int64_t l, const Step& step);
  AttentionArgs CacheAttentionArgs(const Step& step, size_t segment);
  absl::Status Mlp(int64_t l, int64_t moe_index, const Step& step);
  absl::Status DenseMlp(const DeviceMlp& w, const float* x, int64_t num_tokens, float* out);
  absl::Status SharedExperts(int64_t l, int64_t t);
  absl::Status AddSharedExperts(int64_t l, int64_t t);
  absl::Status RoutedExpertsThroughRings(int64_t l, int64_t moe_index, int64_t t);
  absl::Status RoutedExpertsOnHost(int64_t l, int64_t t);

  ModelConfig config_;
  std::unique_ptr<ExpertExecutor> experts_;
  Rope rope_;
  std::string describe_;
  int64_t max_model_len_ = 0;
  int64_t max_pages_ = 0;  // block table entries of one sequence
  bool cuda_graph_ = true;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t copies_done_ = nullptr, done_ = nullptr;
  std::unique_ptr<CudaLinear> linear_;
  // The step upload: per sequence i, [start, block table (max_pages_)]; then the token ids of
  // all sequences. The kernels read it through these accessors.
  PinnedBuffer<int32_t> step_host_;
  DeviceBuffer<int32_t> step_device_;
  int64_t SegmentInts() const { return 1 + max_pages_; }
  int64_t StepIdsOffset(const Step& step) const {
    return static_cast<int64_t>(step.segments.size()) * SegmentInts();
  }
  const int32_t* step_start(size_t i) const { return step_device_.data() + i * SegmentInts(); }
  const int32_t* step_table(size_t i) const { return step_start(i) + 1; }
  const int32_t* step_ids(const Step& step) const {
    return step_device_.data() + StepIdsOffset(step);
  }
  std::unique_ptr<LocalRing> local_ring_;  // for an in-process executor; outlives handoff_
  std::unique_ptr<RingHandoff> handoff_;    // null for a model without MoE layers
  std::map<GraphKey, cudaGraphExec_t> graphs_;
  DeviceWeights weights_;
  std::shared_ptr<PagedKvPool> pool_;
  DeviceBuffer<float> rope_cos_, rope_sin_;  // [max_model_len x rotary_dim / 2]
  std::unique_ptr<Scratch> scratch_;
  std::unique_ptr<GpuSampler> sampler_;
};

}  // namespace tandem::cuda
