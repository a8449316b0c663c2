#include "coordinator/cuda/cuda_engine.h"

#include <algorithm>

#include "kernels/cuda/coordinator_kernels.h"
#include "spdlog/spdlog.h"

namespace tandem::cuda {

struct CudaEngine::Scratch {
  int64_t tokens = 0;
  int64_t logit_rows = 0;  // sequences `last` and `logits` have room for
  DeviceBuffer<float> x, normed, block;
  DeviceBuffer<float> q, k, v, ctx;                          // attention (GQA and MLA)
  DeviceBuffer<float> q_a, kv_a, latent, q_abs, ctx_latent;  // MLA only
  DeviceBuffer<float> gate, up, shared, shared_gate;         // MLPs
  DeviceBuffer<float> router_logits, route_weights;
  DeviceBuffer<int32_t> route_ids;
  DeviceBuffer<float> last, logits;
  // Split-attention partial sums for decode-sized steps (LaunchAttention uses them only when
  // there is room for the step's queries, i.e. few tokens over long contexts).
  DeviceBuffer<float> attention_split;
  // Page-locked host copies for host-function expert calls and the logits.
  PinnedBuffer<float> host_hidden, host_out, host_weights, host_logits;
  PinnedBuffer<int32_t> host_ids;
};

namespace {

RouterArgs RouterArgsFor(const MoeConfig& m) {
  RouterArgs a;
  a.num_experts = m.num_experts;
  a.top_k = m.top_k;
  a.sigmoid = m.scoring == RouterScoring::kSigmoid;
  a.method = m.topk_method == TopkMethod::kGroupLimitedGreedy ? 1
             : m.topk_method == TopkMethod::kNoauxTc          ? 2
                                                              : 0;
  a.n_group = m.n_group;
  a.topk_group = m.topk_group;
  a.norm_topk_prob = m.norm_topk_prob;
  a.routed_scaling_factor = m.routed_scaling_factor;
  return a;
}

// The shapes the kernels support, checked once so a forward pass never meets them.
absl::Status CheckSupported(const ModelConfig& c) {
  if (c.moe.num_experts > kMaxRouterExperts)
    return absl::UnimplementedError(absl::StrCat("the GPU router handles up to ",
                                                 kMaxRouterExperts, " experts, the model has ",
                                                 c.moe.num_experts));
  const int64_t value = c.use_mla ? c.mla.kv_lora_rank : c.head_dim;
  const int64_t query = c.use_mla ? c.mla.kv_lora_rank + c.mla.qk_rope_head_dim : c.head_dim;
  if (value > kMaxAttentionValueDim || query > kMaxAttentionQueryDim)
    return absl::UnimplementedError(
        absl::StrCat("the GPU attention kernel handles heads of up to ", kMaxAttentionValueDim,
                     " values / ", kMaxAttentionQueryDim, " query dims; the model needs ", value,
                     " / ", query));
  return absl::OkStatus();
}

// Steps of up to this many tokens may split their attention over the positions (decode).
constexpr int64_t kSplitAttentionMaxTokens = 4;

}  // namespace

CudaEngine::CudaEngine(const ModelConfig& config, std::unique_ptr<ExpertExecutor> experts)
    : config_(config), experts_(std::move(experts)), rope_(config.rope),
      scratch_(std::make_unique<Scratch>()) {}

CudaEngine::~CudaEngine() {
  if (stream_) cudaStreamSynchronize(stream_);
  DropGraphs();
  handoff_.reset();
  scratch_.reset();
  sampler_.reset();
  pool_.reset();
  local_ring_.reset();
  for (cudaEvent_t e : {copies_done_, done_})
    if (e) cudaEventDestroy(e);
  linear_.reset();
  if (stream_) cudaStreamDestroy(stream_);
}

absl::StatusOr<std::unique_ptr<CudaEngine>> CudaEngine::Create(
    const ModelConfig& config, const Checkpoint& checkpoint,
    std::unique_ptr<ExpertExecutor> experts, const CudaEngineOptions& options) {
  TANDEM_RETURN_IF_ERROR(CheckSupported(config));  // before the weights are read
  TANDEM_ASSIGN_OR_RETURN(ModelWeights weights, LoadModelWeights(config, checkpoint));
  return CreateFromWeights(config, std::move(weights), std::move(experts), options);
}

absl::StatusOr<std::unique_ptr<CudaEngine>> CudaEngine::CreateFromWeights(
    const ModelConfig& config, ModelWeights weights, std::unique_ptr<ExpertExecutor> experts,
    const CudaEngineOptions& options) {
  if (!experts) return absl::InvalidArgumentError("CudaEngine needs an ExpertExecutor");
  if (options.max_model_len <= 0) return absl::InvalidArgumentError("max_model_len must be > 0");
  TANDEM_RETURN_IF_ERROR(CheckSupported(config));
  auto engine = std::unique_ptr<CudaEngine>(new CudaEngine(config, std::move(experts)));
  TANDEM_RETURN_IF_ERROR(engine->Init(std::move(weights), options));
  return engine;
}

absl::Status CudaEngine::Init(ModelWeights host, const CudaEngineOptions& options) {
  TANDEM_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device_index), "cudaSetDevice");
  cudaDeviceProp prop;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, options.device_index),
                              "cudaGetDeviceProperties");
  describe_ = absl::StrCat("cuda:", options.device_index, " (", prop.name, ")");
  TANDEM_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                              "cudaStreamCreate");
  for (cudaEvent_t* e : {&copies_done_, &done_})
    TANDEM_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(e, cudaEventDisableTiming),
                                "cudaEventCreate");
  TANDEM_ASSIGN_OR_RETURN(linear_, CudaLinear::Create(stream_));
  TANDEM_ASSIGN_OR_RETURN(sampler_, GpuSampler::Create(config_.vocab_size));
  cuda_graph_ = options.cuda_graph;

  TANDEM_ASSIGN_OR_RETURN(weights_, UploadModelWeights(std::move(host)));

  max_model_len_ = options.max_model_len;
  const int64_t half = rope_.rotary_dim() / 2;
  std::vector<float> cos(max_model_len_ * half), sin(max_model_len_ * half);
  for (int64_t p = 0; p < max_model_len_; ++p)
    rope_.CosSin(p, cos.data() + p * half, sin.data() + p * half);
  TANDEM_ASSIGN_OR_RETURN(rope_cos_, Upload(cos.data(), cos.size()));
  TANDEM_ASSIGN_OR_RETURN(rope_sin_, Upload(sin.data(), sin.size()));

  const int64_t width_a = config_.use_mla ? config_.mla.kv_lora_rank
                                          : config_.num_kv_heads * config_.head_dim;
  const int64_t width_b = config_.use_mla ? config_.mla.qk_rope_head_dim
                                          : config_.num_kv_heads * config_.head_dim;
  int64_t tokens = options.kv_cache_tokens;
  if (tokens == 0) {
    // Room for kv_cache_sequences full-length sequences, but at most half of the GPU memory
    // still free.
    size_t free_bytes = 0, total_bytes = 0;
    TANDEM_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    const int64_t per_token = config_.num_layers * (width_a + width_b) * sizeof(float);
    tokens = std::max<int64_t>(options.page_size,
                               std::min<int64_t>(options.kv_cache_sequences * max_model_len_,
                                                free_bytes / 2 / per_token));
    if (tokens < max_model_len_)
      spdlog::warn("[coordinator] the GPU KV cache holds {} tokens, less than the context length "
                   "{}: raise --kv-cache-tokens if the GPU has room", tokens, max_model_len_);
  }
  const int64_t pages = (tokens + options.page_size - 1) / options.page_size;
  TANDEM_ASSIGN_OR_RETURN(pool_, PagedKvPool::Create(config_.num_layers, width_a, width_b,
                                                     options.page_size, pages));
  max_pages_ = (max_model_len_ + options.page_size - 1) / options.page_size;
  if (config_.NumMoeLayers() > 0) {
    // The workers' rings, or for an in-process executor a ring this thread serves.
    ExpertRings* rings = experts_->rings();
    if (rings == nullptr) {
      RingCapacity capacity;
      capacity.depth = 2;
      capacity.max_tokens = static_cast<uint32_t>(std::min<int64_t>(512, max_model_len_));
      capacity.hidden_size = static_cast<uint32_t>(config_.hidden_size);
      capacity.max_top_k = static_cast<uint32_t>(config_.moe.top_k);
      TANDEM_ASSIGN_OR_RETURN(
          local_ring_, LocalRing::Create(experts_.get(), capacity,
                                         static_cast<int32_t>(config_.num_layers)));
      rings = local_ring_.get();
    }
    int32_t first_moe = 0;
    while (!config_.layer_is_moe[first_moe]) ++first_moe;
    TANDEM_ASSIGN_OR_RETURN(handoff_,
                            RingHandoff::Create(rings, options.ring_wait, first_moe, stream_));
  }
  describe_ = absl::StrCat(describe_, ", CUDA graph ", cuda_graph_ ? "on" : "off",
                           handoff_ ? absl::StrCat(local_ring_ ? ", in-process" : ", worker",
                                                   " rings (", RingWaitName(options.ring_wait),
                                                   " waits)")
                                    : std::string());
  spdlog::info("[coordinator] {}: {:.1f} MiB of weights, KV cache {} pages x {} tokens "
               "({:.1f} MiB)", describe_, weights_.bytes / 1048576.0, pages, options.page_size,
               pool_->bytes() / 1048576.0);
  return absl::OkStatus();
}

std::unique_ptr<SequenceCache> CudaEngine::NewCache(int64_t capacity) {
  // Positions past the RoPE table cannot run; the cache says so through its capacity.
  return std::make_unique<CudaKvCache>(pool_, std::min(capacity, max_model_len_));
}

absl::Status CudaEngine::Prepare(int64_t max_tokens) {
  TANDEM_RETURN_IF_ERROR(ReserveScratch(max_tokens));
  // The widest product input and output: hidden, attention, MLP and expert widths.
  const ModelConfig& c = config_;
  const int64_t widest = std::max({c.hidden_size, c.intermediate_size,
                                   c.moe.shared_intermediate_size, c.num_heads * c.head_dim,
                                   c.num_heads * (c.mla.qk_nope_head_dim + c.mla.qk_rope_head_dim),
                                   c.num_heads * c.mla.v_head_dim, c.mla.q_lora_rank,
                                   c.mla.kv_lora_rank + c.mla.qk_rope_head_dim,
                                   c.moe.num_experts});
  return linear_->Reserve(max_tokens, widest, widest);
}

absl::Status CudaEngine::ReserveScratch(int64_t t) {
  Scratch& s = *scratch_;
  if (t <= s.tokens) return absl::OkStatus();
  DropGraphs();  // they hold the addresses of the buffers about to be replaced
  const ModelConfig& c = config_;
  const int64_t h = c.hidden_size, heads = c.num_heads;
  const MlaConfig& m = c.mla;
  const int64_t qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
  const int64_t q_width = c.use_mla ? heads * qk : heads * c.head_dim;
  const int64_t ctx_width = c.use_mla ? heads * m.v_head_dim : heads * c.head_dim;
  const int64_t inter = std::max(c.intermediate_size, c.moe.shared_intermediate_size);
  const int64_t segments = std::min(t, kMaxStepSequences);
  TANDEM_RETURN_IF_ERROR(step_host_.Reserve(segments * SegmentInts() + t));
  TANDEM_RETURN_IF_ERROR(step_device_.Reserve(segments * SegmentInts() + t));
  for (DeviceBuffer<float>* b : {&s.x, &s.normed, &s.block, &s.shared})
    TANDEM_RETURN_IF_ERROR(b->Reserve(t * h));
  TANDEM_RETURN_IF_ERROR(s.q.Reserve(t * q_width));
  TANDEM_RETURN_IF_ERROR(s.ctx.Reserve(t * ctx_width));
  if (c.use_mla) {
    TANDEM_RETURN_IF_ERROR(s.q_a.Reserve(t * std::max<int64_t>(m.q_lora_rank, 1)));
    TANDEM_RETURN_IF_ERROR(s.kv_a.Reserve(t * (m.kv_lora_rank + m.qk_rope_head_dim)));
    TANDEM_RETURN_IF_ERROR(s.latent.Reserve(t * m.kv_lora_rank));
    TANDEM_RETURN_IF_ERROR(s.q_abs.Reserve(t * heads * (m.kv_lora_rank + m.qk_rope_head_dim)));
    TANDEM_RETURN_IF_ERROR(s.ctx_latent.Reserve(t * heads * m.kv_lora_rank));
  } else {
    TANDEM_RETURN_IF_ERROR(s.k.Reserve(t * c.num_kv_heads * c.head_dim));
    TANDEM_RETURN_IF_ERROR(s.v.Reserve(t * c.num_kv_heads * c.head_dim));
  }
  TANDEM_RETURN_IF_ERROR(s.gate.Reserve(t * std::max<int64_t>(inter, 1)));
  TANDEM_RETURN_IF_ERROR(s.up.Reserve(t * std::max<int64_t>(inter, 1)));
  TANDEM_RETURN_IF_ERROR(s.shared_gate.Reserve(t));
  if (c.moe.num_experts > 0) {
    TANDEM_RETURN_IF_ERROR(s.router_logits.Reserve(t * c.moe.num_experts));
    TANDEM_RETURN_IF_ERROR(s.route_ids.Reserve(t * c.moe.top_k));
    TANDEM_RETURN_IF_ERROR(s.route_weights.Reserve(t * c.moe.top_k));
    TANDEM_RETURN_IF_ERROR(s.host_ids.Reserve(t * c.moe.top_k));
    TANDEM_RETURN_IF_ERROR(s.host_weights.Reserve(t * c.moe.top_k));
    TANDEM_RETURN_IF_ERROR(s.host_hidden.Reserve(t * h));
    TANDEM_RETURN_IF_ERROR(s.host_out.Reserve(t * h));
  }
  const int64_t value_len = c.use_mla ? m.kv_lora_rank : c.head_dim;
  TANDEM_RETURN_IF_ERROR(s.attention_split.Reserve(
      AttentionScratchFloats(std::min<int64_t>(t, kSplitAttentionMaxTokens), heads, value_len)));
  s.tokens = t;
  return ReserveLogits(1);
}

absl::Status CudaEngine::ReserveLogits(int64_t sequences) {
  Scratch& s = *scratch_;
  if (sequences <= s.logit_rows) return absl::OkStatus();
  DropGraphs();  // they write the buffers about to be replaced
  TANDEM_RETURN_IF_ERROR(s.last.Reserve(sequences * config_.hidden_size));
  TANDEM_RETURN_IF_ERROR(s.logits.Reserve(sequences * config_.vocab_size));
  TANDEM_RETURN_IF_ERROR(s.host_logits.Reserve(sequences * config_.vocab_size));
  s.logit_rows = sequences;
  return absl::OkStatus();
}

AttentionArgs CudaEngine::CacheAttentionArgs(const Step& step, size_t i) {
  const Segment& seg = step.segments[i];
  AttentionArgs a;
  a.scratch = scratch_->attention_split.data();
  a.scratch_floats = static_cast<int64_t>(scratch_->attention_split.size());
  a.page_size = seg.cache->pool().page_size();
  a.block_table = step_table(i);
  a.num_tokens = seg.count;
  a.start = step_start(i);
  a.positions = seg.start + seg.count;
  a.scale = static_cast<float>(config_.AttentionScale());
  a.heads = config_.num_heads;
  a.kv_heads = config_.use_mla ? 1 : config_.num_kv_heads;
  a.value.length = config_.use_mla ? config_.mla.kv_lora_rank : config_.head_dim;
  return a;
}

absl::Status CudaEngine::GqaAttention(int64_t l, const Step& step) {
  const int64_t t = step.tokens;
  const DeviceLayer& w = weights_.layers[l];
  Scratch& s = *scratch_;
  const ModelConfig& c = config_;
  const int64_t heads = c.num_heads, kv_heads = c.num_kv_heads, hd = c.head_dim;
  const int64_t q_width = heads * hd, kv_width = kv_heads * hd;
  const float eps = static_cast<float>(c.rms_norm_eps);
  TANDEM_RETURN_IF_ERROR(linear_->Run(s.normed.data(), t, w.q_proj.view, s.q.data()));
  TANDEM_RETURN_IF_ERROR(linear_->Run(s.normed.data(), t, w.k_proj.view, s.k.data()));
  TANDEM_RETURN_IF_ERROR(linear_->Run(s.normed.data(), t, w.v_proj.view, s.v.data()));
  if (c.qk_norm) {  // Qwen3 normalises each head before the rotation
    LaunchRmsNorm(s.q.data(), hd, w.q_norm.data(), t * heads, hd, eps, s.q.data(), hd, stream_);
    LaunchRmsNorm(s.k.data(), hd, w.k_norm.data(), t * kv_heads, hd, eps, s.k.data(), hd, stream_);
  }
  const int64_t rot = rope_.rotary_dim();
  // Positions, cache and attention are each sequence's own.
  for (size_t i = 0; i < step.segments.size(); ++i) {
    const Segment& seg = step.segments[i];
    const int64_t n = seg.count, row = seg.offset;
    const int32_t* start = step_start(i);
    float* q = s.q.data() + row * q_width;
    float* k = s.k.data() + row * kv_width;
    float* v = s.v.data() + row * kv_width;
    LaunchRope(q, n, q_width, heads, hd, rot, rope_.interleaved(), start, rope_cos_.data(),
               rope_sin_.data(), stream_);
    LaunchRope(k, n, kv_width, kv_heads, hd, rot, rope_.interleaved(), start, rope_cos_.data(),
               rope_sin_.data(), stream_);
    PagedKvPool& pool = seg.cache->pool();
    LaunchWriteCache(k, kv_width, kv_width, n, start, pool.a(l), pool.page_size(), step_table(i),
                     stream_);
    LaunchWriteCache(v, kv_width, kv_width, n, start, pool.b(l), pool.page_size(), step_table(i),
                     stream_);
    AttentionArgs a = CacheAttentionArgs(step, i);
    a.q = q;
    a.q_row_stride = q_width;
    a.q_head_stride = hd;
    a.heads = heads;
    a.kv_heads = kv_heads;
    a.key_a = {pool.a(l), hd, hd};
    a.value = {pool.b(l), hd, hd};
    a.out = s.ctx.data() + row * q_width;
    a.out_row_stride = q_width;
    LaunchAttention(a, stream_);
  }
  TANDEM_RETURN_IF_ERROR(LaunchStatus("GQA attention"));
  return linear_->Run(s.ctx.data(), t, w.o_proj.view, s.block.data());
}

absl::Status CudaEngine::MlaAttention(int64_t l, const Step& step) {
  const int64_t t = step.tokens;
  const DeviceLayer& w = weights_.layers[l];
  Scratch& s = *scratch_;
  const ModelConfig& c = config_;
  const MlaConfig& m = c.mla;
  const int64_t heads = c.num_heads, nope = m.qk_nope_head_dim, rope_dim = m.qk_rope_head_dim;
  const int64_t rank = m.kv_lora_rank, vdim = m.v_head_dim, qk = nope + rope_dim;
  const int64_t kv_a_width = rank + rope_dim, q_abs_width = rank + rope_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  // Queries [T x heads x qk].
  if (m.q_lora_rank == 0) {
    TANDEM_RETURN_IF_ERROR(linear_->Run(s.normed.data(), t, w.q_proj.view, s.q.data()));
  } else {
    TANDEM_RETURN_IF_ERROR(linear_->Run(s.normed.data(), t, w.q_a_proj.view, s.q_a.data()));
    LaunchRmsNorm(s.q_a.data(), m.q_lora_rank, w.q_a_norm.data(), t, m.q_lora_rank, eps,
                  s.q_a.data(), m.q_lora_rank, stream_);
    TANDEM_RETURN_IF_ERROR(linear_->Run(s.q_a.data(), t, w.q_b_proj.view, s.q.data()));
  }
  // Compressed latent (normalised) and shared rope key (rotated) into the cache.
  TANDEM_RETURN_IF_ERROR(linear_->Run(s.normed.data(), t, w.kv_a_proj.view, s.kv_a.data()));
  LaunchRmsNorm(s.kv_a.data(), kv_a_width, w.kv_a_norm.data(), t, rank, eps, s.latent.data(), rank,
                stream_);
  const int64_t rot = rope_.rotary_dim();
  for (size_t i = 0; i < step.segments.size(); ++i) {  // each sequence's positions and cache
    const Segment& seg = step.segments[i];
    const int64_t n = seg.count, row = seg.offset;
    const int32_t* start = step_start(i);
    LaunchRope(s.kv_a.data() + row * kv_a_width + rank, n, kv_a_width, 1, rope_dim, rot,
               rope_.interleaved(), start, rope_cos_.data(), rope_sin_.data(), stream_);
    LaunchRope(s.q.data() + row * heads * qk + nope, n, heads * qk, heads, qk, rot,
               rope_.interleaved(), start, rope_cos_.data(), rope_sin_.data(), stream_);
    PagedKvPool& pool = seg.cache->pool();
    LaunchWriteCache(s.latent.data() + row * rank, rank, rank, n, start, pool.a(l),
                     pool.page_size(), step_table(i), stream_);
    LaunchWriteCache(s.kv_a.data() + row * kv_a_width + rank, kv_a_width, rope_dim, n, start,
                     pool.b(l), pool.page_size(), step_table(i), stream_);
  }
  // Absorbed query [T x heads x (rank + rope)]: q_nope W_UK per head, then the rotated rope part.
  TANDEM_RETURN_IF_ERROR(linear_->BatchedF32(t, rank, nope, s.q.data(), heads * qk, qk,
                                             w.w_uk.data(), rank, nope * rank, false,
                                             s.q_abs.data(), heads * q_abs_width, q_abs_width,
                                             heads));
  TANDEM_CUDA_RETURN_IF_ERROR(
      cudaMemcpy2DAsync(s.q_abs.data() + rank, q_abs_width * sizeof(float), s.q.data() + nope,
                        qk * sizeof(float), rope_dim * sizeof(float), t * heads,
                        cudaMemcpyDeviceToDevice, stream_),
      "MLA rope query copy");
  for (size_t i = 0; i < step.segments.size(); ++i) {
    const Segment& seg = step.segments[i];
    PagedKvPool& pool = seg.cache->pool();
    AttentionArgs a = CacheAttentionArgs(step, i);
    a.q = s.q_abs.data() + seg.offset * heads * q_abs_width;
    a.q_row_stride = heads * q_abs_width;
    a.q_head_stride = q_abs_width;
    a.heads = heads;
    a.kv_heads = 1;
    a.key_a = {pool.a(l), 0, rank};
    a.key_b = {pool.b(l), 0, rope_dim};
    a.value = {pool.a(l), 0, rank};
    a.out = s.ctx_latent.data() + seg.offset * heads * rank;
    a.out_row_stride = heads * rank;
    LaunchAttention(a, stream_);
  }
  TANDEM_RETURN_IF_ERROR(LaunchStatus("MLA attention"));
  // W_UV per head: ctx[t, h, :] = W_UV[h] ctx_latent[t, h, :].
  TANDEM_RETURN_IF_ERROR(linear_->BatchedF32(t, vdim, rank, s.ctx_latent.data(), heads * rank,
                                             rank, w.w_uv.data(), rank, vdim * rank, true,
                                             s.ctx.data(), heads * vdim, vdim, heads));
  return linear_->Run(s.ctx.data(), t, w.o_proj.view, s.block.data());
}

absl::Status CudaEngine::DenseMlp(const DeviceMlp& w, const float* x, int64_t t, float* out) {
  Scratch& s = *scratch_;
  const int64_t inter = w.gate.view.rows;
  TANDEM_RETURN_IF_ERROR(linear_->Run(x, t, w.gate.view, s.gate.data()));
  TANDEM_RETURN_IF_ERROR(linear_->Run(x, t, w.up.view, s.up.data()));
  LaunchSiluMul(s.gate.data(), s.up.data(), t * inter, stream_);
  TANDEM_RETURN_IF_ERROR(LaunchStatus("SiLU"));
  return linear_->Run(s.gate.data(), t, w.down.view, out);
}

absl::Status CudaEngine::SharedExperts(int64_t l, int64_t t) {
  const DeviceLayer& w = weights_.layers[l];
  Scratch& s = *scratch_;
  if (w.shared.empty()) return absl::OkStatus();
  TANDEM_RETURN_IF_ERROR(DenseMlp(w.shared, s.normed.data(), t, s.shared.data()));
  if (w.shared_expert_gate.empty()) return absl::OkStatus();
  return linear_->Run(s.normed.data(), t, w.shared_expert_gate.view, s.shared_gate.data());
}

absl::Status CudaEngine::AddSharedExperts(int64_t l, int64_t t) {
  const DeviceLayer& w = weights_.layers[l];
  Scratch& s = *scratch_;
  const int64_t h = config_.hidden_size;
  if (w.shared.empty()) return absl::OkStatus();
  if (!w.shared_expert_gate.empty()) {
    LaunchAddSigmoidGated(s.block.data(), s.shared.data(), s.shared_gate.data(), t, h, stream_);
  } else {
    LaunchAdd(s.block.data(), s.shared.data(), t * h, stream_);
  }
  return LaunchStatus("shared expert add");
}

absl::Status CudaEngine::RoutedExpertsThroughRings(int64_t l, int64_t moe_index, int64_t t) {
  Scratch& s = *scratch_;
  TANDEM_RETURN_IF_ERROR(handoff_->EnqueueSubmit(moe_index, static_cast<int32_t>(l), t,
                                                 config_.moe.top_k, s.normed.data(),
                                                 s.route_ids.data(), s.route_weights.data()));
  // Queued behind the request: the GPU computes the shared experts while the workers run.
  TANDEM_RETURN_IF_ERROR(SharedExperts(l, t));
  TANDEM_RETURN_IF_ERROR(handoff_->EnqueueCollect(moe_index, t, s.block.data()));
  return AddSharedExperts(l, t);
}

absl::Status CudaEngine::RoutedExpertsOnHost(int64_t l, int64_t t) {
  // Steps larger than a ring slot (long prefills): the host hands the inputs to the executor
  // and waits; never captured in a graph, which holds decode-sized steps only.
  Scratch& s = *scratch_;
  const int64_t h = config_.hidden_size, k = config_.moe.top_k;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(s.host_hidden.data(), s.normed.data(),
                                              t * h * sizeof(float), cudaMemcpyDeviceToHost,
                                              stream_), "hidden to host");
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(s.host_ids.data(), s.route_ids.data(),
                                              t * k * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                              stream_), "expert ids to host");
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(s.host_weights.data(), s.route_weights.data(),
                                              t * k * sizeof(float), cudaMemcpyDeviceToHost,
                                              stream_), "routing weights to host");
  TANDEM_CUDA_RETURN_IF_ERROR(cudaEventRecord(copies_done_, stream_), "cudaEventRecord");
  // Queued behind the copies: the GPU computes the shared experts while the executor runs.
  TANDEM_RETURN_IF_ERROR(SharedExperts(l, t));
  {
    ScopedTimer timer(times_.gpu_wait_ms);
    TANDEM_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(copies_done_), "waiting for the router");
  }
  MoeBatch batch{static_cast<int32_t>(l), t, k, s.host_hidden.data(), s.host_ids.data(),
                 s.host_weights.data()};
  {
    ScopedTimer timer(times_.experts_ms);
    TANDEM_RETURN_IF_ERROR(experts_->Run(batch, s.host_out.data()));
  }
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(s.block.data(), s.host_out.data(),
                                              t * h * sizeof(float), cudaMemcpyHostToDevice,
                                              stream_), "expert output to GPU");
  return AddSharedExperts(l, t);
}

absl::Status CudaEngine::Mlp(int64_t l, int64_t moe_index, const Step& step) {
  const DeviceLayer& w = weights_.layers[l];
  Scratch& s = *scratch_;
  const int64_t t = step.tokens;
  if (!w.is_moe) return DenseMlp(w.dense, s.normed.data(), t, s.block.data());
  TANDEM_RETURN_IF_ERROR(linear_->Run(s.normed.data(), t, w.router.view, s.router_logits.data()));
  RouterArgs args = RouterArgsFor(config_.moe);
  args.score_bias = w.score_correction_bias.size() ? w.score_correction_bias.data() : nullptr;
  LaunchRoute(args, s.router_logits.data(), t, s.route_ids.data(), s.route_weights.data(), stream_);
  TANDEM_RETURN_IF_ERROR(LaunchStatus("router"));
  return step.use_rings ? RoutedExpertsThroughRings(l, moe_index, t) : RoutedExpertsOnHost(l, t);
}

absl::Status CudaEngine::EnqueueForward(const Step& step) {
  Scratch& s = *scratch_;
  const int64_t t = step.tokens, h = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  LaunchEmbedding(weights_.embed.view, step_ids(step), t, s.x.data(), stream_);
  int64_t moe_index = 0;
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    const DeviceLayer& w = weights_.layers[l];
    LaunchRmsNorm(s.x.data(), h, w.input_norm.data(), t, h, eps, s.normed.data(), h, stream_);
    TANDEM_RETURN_IF_ERROR(config_.use_mla ? MlaAttention(l, step) : GqaAttention(l, step));
    LaunchAdd(s.x.data(), s.block.data(), t * h, stream_);
    LaunchRmsNorm(s.x.data(), h, w.post_attention_norm.data(), t, h, eps, s.normed.data(), h,
                  stream_);
    TANDEM_RETURN_IF_ERROR(Mlp(l, moe_index, step));
    if (w.is_moe) ++moe_index;
    LaunchAdd(s.x.data(), s.block.data(), t * h, stream_);
  }
  // Each sequence's last row, normalised, then the LM head over all of them at once.
  const int64_t n = static_cast<int64_t>(step.segments.size());
  for (int64_t i = 0; i < n; ++i) {
    const Segment& seg = step.segments[i];
    LaunchRmsNorm(s.x.data() + (seg.offset + seg.count - 1) * h, h, weights_.final_norm.data(), 1,
                  h, eps, s.last.data() + i * h, h, stream_);
  }
  TANDEM_RETURN_IF_ERROR(linear_->Run(s.last.data(), n, weights_.output(), s.logits.data()));
  return LaunchStatus("forward pass");
}

void CudaEngine::DropGraphs() {
  if (!graphs_.empty()) cudaStreamSynchronize(stream_);
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  graphs_.clear();
}

absl::Status CudaEngine::RunStep(const Step& step) {
  if (!cuda_graph_ || step.tokens > kMaxGraphTokens || step.segments.size() != 1)
    return EnqueueForward(step);
  const uint64_t generation = step.use_rings ? handoff_->generation() : 0;
  const GraphKey key{step.tokens, AttentionSplits(CacheAttentionArgs(step, 0)), generation};
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    // Graphs over rings that were replaced since hold stale addresses.
    for (auto g = graphs_.begin(); g != graphs_.end();) {
      if (std::get<2>(g->first) != generation && std::get<2>(g->first) != 0) {
        cudaGraphExecDestroy(g->second);
        g = graphs_.erase(g);
      } else {
        ++g;
      }
    }
    TANDEM_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal),
                                "cudaStreamBeginCapture");
    const absl::Status captured = EnqueueForward(step);
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    TANDEM_RETURN_IF_ERROR(captured);
    TANDEM_CUDA_RETURN_IF_ERROR(ended, "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    TANDEM_CUDA_RETURN_IF_ERROR(made, "cudaGraphInstantiate");
    it = graphs_.emplace(key, exec).first;
    spdlog::debug("[coordinator] captured the CUDA graph of {}-token steps ({} graphs)",
                  step.tokens, graphs_.size());
  }
  TANDEM_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(it->second, stream_), "cudaGraphLaunch");
  return absl::OkStatus();
}

absl::Status CudaEngine::RunForward(std::span<const SequenceStep> steps,
                                    const std::function<absl::Status()>& enqueue_tail) {
  Step step;
  for (const SequenceStep& one : steps) {
    auto* cache = dynamic_cast<CudaKvCache*>(one.cache);
    if (!cache) return absl::InvalidArgumentError("the cache was not made by the CUDA engine");
    const int64_t count = static_cast<int64_t>(one.tokens.size());
    step.segments.push_back({step.tokens, count, cache->length(), cache});
    step.tokens += count;
  }
  TANDEM_RETURN_IF_ERROR(ValidateBatchInput(config_, steps));
  if (static_cast<int64_t>(steps.size()) > kMaxStepSequences)
    return absl::InvalidArgumentError(absl::StrCat("a step holds at most ", kMaxStepSequences,
                                                   " sequences, got ", steps.size()));
  ScopedTimer timer(times_.total_ms);
  ++times_.forwards;
  step.use_rings = handoff_ && step.tokens <= handoff_->max_tokens();
  TANDEM_RETURN_IF_ERROR(ReserveScratch(step.tokens));
  TANDEM_RETURN_IF_ERROR(ReserveLogits(static_cast<int64_t>(steps.size())));
  for (const Segment& seg : step.segments)
    TANDEM_RETURN_IF_ERROR(seg.cache->Reserve(seg.start + seg.count));
  // The step upload (layout: step_start / step_table / step_ids).
  int32_t* up = step_host_.data();
  for (size_t i = 0; i < step.segments.size(); ++i) {
    int32_t* block = up + i * SegmentInts();
    block[0] = static_cast<int32_t>(step.segments[i].start);
    const std::vector<int32_t>& pages = step.segments[i].cache->pages();
    std::copy(pages.begin(), pages.end(), block + 1);
  }
  int32_t* ids = up + StepIdsOffset(step);
  for (const SequenceStep& one : steps) ids = std::copy(one.tokens.begin(), one.tokens.end(), ids);
  TANDEM_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(step_device_.data(), up,
                      (StepIdsOffset(step) + step.tokens) * sizeof(int32_t),
                      cudaMemcpyHostToDevice, stream_),
      "step upload");
  if (step.use_rings) TANDEM_RETURN_IF_ERROR(handoff_->BeginStep(config_.NumMoeLayers()));
  const double busy_before = local_ring_ ? local_ring_->busy_ms() : 0;
  absl::Status enqueued = RunStep(step);
  if (enqueued.ok()) enqueued = enqueue_tail();
  absl::Status status = enqueued;
  {
    // With rings this wait includes the experts' time (they compute meanwhile).
    ScopedTimer wait(times_.gpu_wait_ms);
    TANDEM_CUDA_RETURN_IF_ERROR(cudaEventRecord(done_, stream_), "cudaEventRecord");
    if (step.use_rings) {
      status = handoff_->FinishStep(done_, enqueued);
    } else if (cudaError_t e = cudaEventSynchronize(done_); e != cudaSuccess && status.ok()) {
      status = absl::InternalError(absl::StrCat("forward pass: ", cudaGetErrorString(e)));
    }
  }
  if (local_ring_) {  // the in-process experts ran within the wait: count them as expert time
    const double busy = local_ring_->busy_ms() - busy_before;
    times_.experts_ms += busy;
    times_.gpu_wait_ms -= std::min(times_.gpu_wait_ms, busy);
  }
  TANDEM_RETURN_IF_ERROR(status);
  for (const Segment& seg : step.segments) seg.cache->Advance(seg.count);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> CudaEngine::Forward(std::span<const int32_t> tokens,
                                                       SequenceCache& sequence) {
  const SequenceStep step{tokens, &sequence};
  TANDEM_ASSIGN_OR_RETURN(std::vector<std::vector<float>> logits, ForwardBatch({&step, 1}));
  return std::move(logits[0]);
}

absl::StatusOr<std::vector<std::vector<float>>> CudaEngine::ForwardBatch(
    std::span<const SequenceStep> steps) {
  const int64_t vocab = config_.vocab_size;
  TANDEM_RETURN_IF_ERROR(RunForward(steps, [&] {
    Scratch& s = *scratch_;
    return CudaStatus(cudaMemcpyAsync(s.host_logits.data(), s.logits.data(),
                                      steps.size() * vocab * sizeof(float),
                                      cudaMemcpyDeviceToHost, stream_),
                      "logits to host");
  }));
  std::vector<std::vector<float>> out(steps.size());
  const float* host = scratch_->host_logits.data();
  for (size_t i = 0; i < steps.size(); ++i) out[i].assign(host + i * vocab, host + (i + 1) * vocab);
  return out;
}

absl::StatusOr<int32_t> CudaEngine::ForwardAndSample(std::span<const int32_t> tokens,
                                                     SequenceCache& sequence, Sampler& sampler,
                                                     std::span<const int32_t> history) {
  const SequenceStep step{tokens, &sequence};
  Sampler* samplers[] = {&sampler};
  const std::span<const int32_t> histories[] = {history};
  TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> drawn,
                          ForwardBatchAndSample({&step, 1}, samplers, histories));
  return drawn[0];
}

absl::StatusOr<std::vector<int32_t>> CudaEngine::ForwardBatchAndSample(
    std::span<const SequenceStep> steps, std::span<Sampler* const> samplers,
    std::span<const std::span<const int32_t>> histories) {
  TANDEM_RETURN_IF_ERROR(ValidateBatchSampling(steps, samplers, histories));
  std::vector<GpuSampler::Draw> draws(steps.size());
  TANDEM_RETURN_IF_ERROR(RunForward(steps, [&] {
    // The uniform numbers are drawn here, once the step is sure to run, as the host sampler
    // draws them after its forward pass.
    for (size_t i = 0; i < steps.size(); ++i) {
      if (samplers[i] == nullptr) continue;
      const SamplingParams& params = samplers[i]->params();
      draws[i] = {&params, params.greedy() ? 0.0 : samplers[i]->NextUniform(), histories[i]};
    }
    return sampler_->Enqueue(scratch_->logits.data(), draws, stream_);
  }));
  std::vector<int32_t> tokens(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) tokens[i] = sampler_->token(i);
  return tokens;
}

}  // namespace tandem::cuda
