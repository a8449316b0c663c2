#include "numa_worker/expert_shard.h"

#include "coordinator/models/tensor_names.h"
#include "coordinator/weight_loader.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"

namespace tandem {
namespace {

// Intermediate rows [begin, end) of one expert: rows of gate/up, columns of down.
absl::StatusOr<MlpWeights> LoadExpert(const WeightLoader& w, const ModelConfig& c, int64_t layer,
                                      int64_t expert, int64_t begin, int64_t end) {
  const int64_t h = c.hidden_size, inter = c.moe.expert_intermediate_size;
  const ExpertTensorNames names = ExpertNames(c, layer, expert);
  const MoeTensorNames fused = MoeNames(c, layer);
  MlpWeights m;
  if (w.Has(names.gate) || !w.Has(fused.fused_gate_up)) {
    TANDEM_ASSIGN_OR_RETURN(m.gate, w.MatrixRows(names.gate, inter, h, begin, end));
    TANDEM_ASSIGN_OR_RETURN(m.up, w.MatrixRows(names.up, inter, h, begin, end));
    TANDEM_ASSIGN_OR_RETURN(m.down, w.MatrixColumns(names.down, h, inter, begin, end));
    return m;
  }
  // transformers >= 5 layout: gate_up [E x 2I x H] (gate rows first), down [E x H x I].
  TANDEM_ASSIGN_OR_RETURN(m.gate, w.MatrixFrom3d(fused.fused_gate_up, expert, 0, inter, h));
  TANDEM_ASSIGN_OR_RETURN(m.up, w.MatrixFrom3d(fused.fused_gate_up, expert, inter, inter, h));
  TANDEM_ASSIGN_OR_RETURN(m.down, w.MatrixFrom3d(fused.fused_down, expert, 0, h, inter));
  m.gate = SliceMatrix(m.gate, begin, end, 0, h);
  m.up = SliceMatrix(m.up, begin, end, 0, h);
  m.down = SliceMatrix(m.down, 0, h, begin, end);
  return m;
}

}  // namespace

absl::Status ShardPlan::Validate() const {
  if (count < 1 || index < 0 || index >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard index ", index, " is not in [0, ", count, ")"));
  }
  return absl::OkStatus();
}

std::pair<int64_t, int64_t> ShardPlan::IntermediateRange(int64_t intermediate) const {
  // The first (intermediate % count) shards take one row more.
  const int64_t base = intermediate / count, extra = intermediate % count;
  const int64_t begin = index * base + std::min<int64_t>(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

bool ShardPlan::OwnsExpert(int64_t e, int64_t num_experts) const {
  const int64_t base = num_experts / count, extra = num_experts % count;
  const int64_t begin = index * base + std::min<int64_t>(index, extra);
  return e >= begin && e < begin + base + (index < extra ? 1 : 0);
}

absl::StatusOr<std::unique_ptr<ExpertShard>> ExpertShard::Load(const ModelConfig& config,
                                                               const Checkpoint& checkpoint,
                                                               const ShardPlan& plan,
                                                               CpuKernel kernel) {
  TANDEM_RETURN_IF_ERROR(plan.Validate());
  std::unique_ptr<ExpertShard> shard(new ExpertShard(config, plan));
  TANDEM_ASSIGN_OR_RETURN(shard->kernel_.isa, ResolveCpuKernel(kernel));
  shard->packed_.resize(config.num_layers);
  WeightLoader loader(checkpoint, config);
  const auto [begin, end] = plan.IntermediateRange(config.moe.expert_intermediate_size);
  shard->experts_.resize(config.num_layers);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (!config.layer_is_moe[l]) continue;
    shard->experts_[l].resize(config.moe.num_experts);
    shard->packed_[l].resize(config.moe.num_experts);
    for (int64_t e = 0; e < config.moe.num_experts; ++e) {
      const bool tensor_parallel = plan.mode == ShardPlan::Mode::kTensorParallel;
      if (!tensor_parallel && !plan.OwnsExpert(e, config.moe.num_experts)) continue;
      if (tensor_parallel && begin == end) continue;
      const int64_t row_begin = tensor_parallel ? begin : 0;
      const int64_t row_end = tensor_parallel ? end : config.moe.expert_intermediate_size;
      TANDEM_ASSIGN_OR_RETURN(MlpWeights m, LoadExpert(loader, config, l, e, row_begin, row_end));
      if (!m.gate.is_f32 && !m.up.is_f32 && !m.down.is_f32) {
        TANDEM_ASSIGN_OR_RETURN(shard->packed_[l][e], PackExpert(m.gate, m.up, m.down));
        shard->weight_bytes_ += shard->packed_[l][e].bytes();
        continue;
      }
      shard->weight_bytes_ += m.gate.bytes() + m.up.bytes() + m.down.bytes();
      shard->experts_[l][e] = std::move(m);
    }
  }
  return shard;
}

absl::StatusOr<std::unique_ptr<ExpertShard>> ExpertShard::FromWeights(
    const ModelConfig& config, std::vector<std::vector<MlpWeights>> experts, CpuKernel kernel) {
  if (static_cast<int64_t>(experts.size()) != config.num_layers ||
      static_cast<int64_t>(config.layer_is_moe.size()) != config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("expected expert weights of ", config.num_layers,
                                                   " layers, got ", experts.size()));
  }
  std::unique_ptr<ExpertShard> shard(new ExpertShard(config, ShardPlan{}));
  TANDEM_ASSIGN_OR_RETURN(shard->kernel_.isa, ResolveCpuKernel(kernel));
  shard->experts_.resize(config.num_layers);
  shard->packed_.resize(config.num_layers);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (!config.layer_is_moe[l]) continue;
    if (static_cast<int64_t>(experts[l].size()) != config.moe.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", l, ": expected ", config.moe.num_experts, " experts, got ", experts[l].size()));
    }
    shard->experts_[l].resize(config.moe.num_experts);
    shard->packed_[l].resize(config.moe.num_experts);
    for (int64_t e = 0; e < config.moe.num_experts; ++e) {
      MlpWeights& m = experts[l][e];
      if (m.empty()) continue;
      if (!m.gate.is_f32 && !m.up.is_f32 && !m.down.is_f32) {
        TANDEM_ASSIGN_OR_RETURN(shard->packed_[l][e], PackExpert(m.gate, m.up, m.down));
        shard->weight_bytes_ += shard->packed_[l][e].bytes();
        m = MlpWeights();  // free the unpacked copy now
        continue;
      }
      shard->weight_bytes_ += m.gate.bytes() + m.up.bytes() + m.down.bytes();
      shard->experts_[l][e] = std::move(m);
    }
  }
  return shard;
}

absl::Status ExpertShard::Run(const MoeBatch& b, float* out) const {
  const int64_t h = config_.hidden_size;
  if (b.layer < 0 || b.layer >= config_.num_layers || packed_[b.layer].empty())
    return absl::InvalidArgumentError(absl::StrCat("layer ", b.layer, " is not a MoE layer"));
  if (b.num_tokens < 0 || b.top_k < 0 || b.top_k > config_.moe.num_experts)
    return absl::InvalidArgumentError("bad token count or top-k");
  const int64_t num_experts = config_.moe.num_experts;
  // Group (token, weight) pairs by expert so each expert's weights are streamed once.
  std::vector<std::vector<std::pair<int64_t, float>>> rows(num_experts);
  for (int64_t t = 0; t < b.num_tokens; ++t) {
    for (int64_t j = 0; j < b.top_k; ++j) {
      const int32_t e = b.expert_ids[t * b.top_k + j];
      if (e < 0 || e >= num_experts)
        return absl::InvalidArgumentError(absl::StrCat("expert id ", e, " out of range"));
      rows[e].push_back({t, b.weights[t * b.top_k + j]});
    }
  }
  // Work is cut into (expert, block of rows) tasks that the pinned threads take dynamically
  // (OpenMP's dynamic schedule hands them out through a shared counter), so an expert with many
  // tokens does not hold up the others. Phase 1: act = silu(gate x) * up x per expert;
  // phase 2: y = down act; phase 3: out[t] += w * y, parallel over hidden columns.
  struct Active {
    int64_t expert, first_row;  // first_row: offset of its tokens in the packed buffers
    int64_t n, inter;
  };
  std::vector<Active> active;
  int64_t packed_rows = 0, act_size = 0;
  bool any_unpacked = false;  // f32 experts need a separate `up` product; packed ones fuse it
  std::vector<int64_t> act_offset;
  for (int64_t e = 0; e < num_experts; ++e) {
    const MlpWeights& w = experts_[b.layer][e];
    const PackedExpert& p = packed_[b.layer][e];
    if (rows[e].empty() || (w.empty() && p.empty())) continue;
    const int64_t n = static_cast<int64_t>(rows[e].size());
    const int64_t inter = p.empty() ? w.gate.rows : p.intermediate();
    any_unpacked |= p.empty();
    active.push_back({e, packed_rows, n, inter});
    act_offset.push_back(act_size);
    packed_rows += n;
    act_size += n * inter;
  }
  std::vector<float> x(packed_rows * h), y(packed_rows * h), act(act_size);
  std::vector<float> up(any_unpacked ? act_size : 0);
  for (const Active& a : active)
    for (int64_t i = 0; i < a.n; ++i)
      std::copy(b.hidden + rows[a.expert][i].first * h, b.hidden + (rows[a.expert][i].first + 1) * h,
                x.begin() + (a.first_row + i) * h);
  constexpr int64_t kRowsPerTask = 32;
  std::vector<std::pair<int64_t, int64_t>> up_tasks, down_tasks;  // (active index, first row)
  for (size_t i = 0; i < active.size(); ++i) {
    for (int64_t r = 0; r < active[i].inter; r += kRowsPerTask) up_tasks.push_back({i, r});
    for (int64_t r = 0; r < h; r += kRowsPerTask) down_tasks.push_back({i, r});
  }
  const int64_t work = packed_rows * h * (active.empty() ? 0 : active[0].inter) * 3;
#pragma omp parallel if (work >= (1 << 18))
  {
#pragma omp for schedule(dynamic, 1)
    for (size_t task = 0; task < up_tasks.size(); ++task) {
      const Active& a = active[up_tasks[task].first];
      const int64_t r0 = up_tasks[task].second, r1 = std::min(a.inter, r0 + kRowsPerTask);
      float* g = act.data() + act_offset[up_tasks[task].first];
      const float* xe = x.data() + a.first_row * h;
      const PackedExpert& p = packed_[b.layer][a.expert];
      if (!p.empty()) {
        GateUpRows(kernel_, p, ExpertActivations{xe, nullptr, a.n, h}, r0, r1, g);
        continue;
      }
      const MlpWeights& w = experts_[b.layer][a.expert];
      float* u = up.data() + act_offset[up_tasks[task].first];
      LinearRowRange(xe, a.n, w.gate, r0, r1, g);
      LinearRowRange(xe, a.n, w.up, r0, r1, u);
      for (int64_t i = 0; i < a.n; ++i) SiluMul(g + i * a.inter + r0, u + i * a.inter + r0, r1 - r0);
    }
#pragma omp for schedule(dynamic, 1)
    for (size_t task = 0; task < down_tasks.size(); ++task) {
      const Active& a = active[down_tasks[task].first];
      const int64_t r0 = down_tasks[task].second, r1 = std::min(h, r0 + kRowsPerTask);
      const float* ae = act.data() + act_offset[down_tasks[task].first];
      float* ye = y.data() + a.first_row * h;
      const PackedExpert& p = packed_[b.layer][a.expert];
      if (!p.empty()) {
        DownRows(kernel_, p, ExpertActivations{ae, nullptr, a.n, a.inter}, r0, r1, ye);
      } else {
        LinearRowRange(ae, a.n, experts_[b.layer][a.expert].down, r0, r1, ye);
      }
    }
#pragma omp for schedule(static)
    for (int64_t d0 = 0; d0 < h; d0 += kRowsPerTask) {
      const int64_t d1 = std::min(h, d0 + kRowsPerTask);
      for (int64_t t = 0; t < b.num_tokens; ++t) std::fill(out + t * h + d0, out + t * h + d1, 0.0f);
      for (const Active& a : active) {
        for (int64_t i = 0; i < a.n; ++i) {
          float* o = out + rows[a.expert][i].first * h;
          const float wt = rows[a.expert][i].second;
          const float* yi = y.data() + (a.first_row + i) * h;
          for (int64_t d = d0; d < d1; ++d) o[d] += wt * yi[d];
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem
