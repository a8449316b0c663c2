#include "numa_worker/expert_shard.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <utility>

#include "coordinator/models/tensor_names.h"
#include "coordinator/weight_loader.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/moe_kernel_impl.h"  // AmxTuning::task_rows

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

absl::StatusOr<std::unique_ptr<ExpertShard>> ExpertShard::Create(const ModelConfig& config,
                                                                 const ShardPlan& plan,
                                                                 const ExpertShardOptions& o) {
  TANDEM_RETURN_IF_ERROR(plan.Validate());
  if (o.format.dtype == ExpertDtype::kInt4 && o.format.group_size != 32 &&
      o.format.group_size != 128) {
    return absl::InvalidArgumentError("int4 experts need a group size of 32 or 128");
  }
  std::unique_ptr<ExpertShard> shard(new ExpertShard(config, plan));
  TANDEM_ASSIGN_OR_RETURN(shard->kernel_.isa, ResolveCpuKernel(o.kernel));
  shard->format_ = o.format;
  shard->schedule_ = o.schedule;
  shard->experts_.resize(config.num_layers);
  shard->packed_.resize(config.num_layers);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (!config.layer_is_moe[l]) continue;
    shard->experts_[l].resize(config.moe.num_experts);
    shard->packed_[l].resize(config.moe.num_experts);
  }
  return shard;
}

absl::Status ExpertShard::Add(int64_t layer, int64_t expert, MlpWeights m) {
  const bool bf16 = !m.gate.is_f32 && !m.up.is_f32 && !m.down.is_f32;
  if (format_.quantized() || bf16) {
    TANDEM_ASSIGN_OR_RETURN(packed_[layer][expert], PackExpert(m.gate, m.up, m.down, format_));
    weight_bytes_ += packed_[layer][expert].bytes();
    return absl::OkStatus();
  }
  weight_bytes_ += m.gate.bytes() + m.up.bytes() + m.down.bytes();
  experts_[layer][expert] = std::move(m);
  return absl::OkStatus();
}

size_t ExpertShard::expert_bytes(int64_t layer, int64_t expert) const {
  if (layer < 0 || layer >= static_cast<int64_t>(packed_.size()) || expert < 0 ||
      expert >= static_cast<int64_t>(packed_[layer].size()))
    return 0;
  const MlpWeights& w = experts_[layer][expert];
  return packed_[layer][expert].bytes() + w.gate.bytes() + w.up.bytes() + w.down.bytes();
}

absl::StatusOr<std::unique_ptr<ExpertShard>> ExpertShard::Load(const ModelConfig& config,
                                                               const Checkpoint& checkpoint,
                                                               const ShardPlan& plan,
                                                               const ExpertShardOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<ExpertShard> shard, Create(config, plan, options));
  WeightLoader loader(checkpoint, config);
  const auto [begin, end] = plan.IntermediateRange(config.moe.expert_intermediate_size);
  const bool tensor_parallel = plan.mode == ShardPlan::Mode::kTensorParallel;
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (!config.layer_is_moe[l]) continue;
    for (int64_t e = 0; e < config.moe.num_experts; ++e) {
      if (!tensor_parallel && !plan.OwnsExpert(e, config.moe.num_experts)) continue;
      if (tensor_parallel && begin == end) continue;
      const int64_t row_begin = tensor_parallel ? begin : 0;
      const int64_t row_end = tensor_parallel ? end : config.moe.expert_intermediate_size;
      TANDEM_ASSIGN_OR_RETURN(MlpWeights m, LoadExpert(loader, config, l, e, row_begin, row_end));
      TANDEM_RETURN_IF_ERROR(shard->Add(l, e, std::move(m)));
    }
  }
  return shard;
}

absl::StatusOr<std::unique_ptr<ExpertShard>> ExpertShard::FromWeights(
    const ModelConfig& config, std::vector<std::vector<MlpWeights>> experts,
    const ExpertShardOptions& options) {
  if (static_cast<int64_t>(experts.size()) != config.num_layers ||
      static_cast<int64_t>(config.layer_is_moe.size()) != config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("expected expert weights of ", config.num_layers,
                                                   " layers, got ", experts.size()));
  }
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (config.layer_is_moe[l] &&
        static_cast<int64_t>(experts[l].size()) != config.moe.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", l, ": expected ", config.moe.num_experts, " experts, got ", experts[l].size()));
    }
  }
  return FromSource(
      config,
      [&experts](int64_t l, int64_t e) -> absl::StatusOr<MlpWeights> {
        return std::exchange(experts[l][e], MlpWeights());  // frees the unpacked copy as it packs
      },
      options);
}

MlpWeights SliceExpert(const MlpWeights& m, int64_t begin, int64_t end) {
  auto rows = [&](const WeightMatrix& w) {
    WeightMatrix out;
    out.rows = end - begin;
    out.cols = w.cols;
    out.is_f32 = w.is_f32;
    if (w.is_f32) {
      out.f32.assign(w.f32.begin() + begin * w.cols, w.f32.begin() + end * w.cols);
    } else {
      out.bf16.assign(w.bf16.begin() + begin * w.cols, w.bf16.begin() + end * w.cols);
    }
    return out;
  };
  WeightMatrix down;
  down.rows = m.down.rows;
  down.cols = end - begin;
  down.is_f32 = m.down.is_f32;
  for (int64_t r = 0; r < m.down.rows; ++r) {
    const int64_t from = r * m.down.cols + begin, to = r * m.down.cols + end;
    if (m.down.is_f32) {
      down.f32.insert(down.f32.end(), m.down.f32.begin() + from, m.down.f32.begin() + to);
    } else {
      down.bf16.insert(down.bf16.end(), m.down.bf16.begin() + from, m.down.bf16.begin() + to);
    }
  }
  return MlpWeights{rows(m.gate), rows(m.up), std::move(down)};
}

absl::StatusOr<std::unique_ptr<ExpertShard>> ExpertShard::FromSource(
    const ModelConfig& config, const ExpertSource& source, const ExpertShardOptions& options,
    const ShardPlan& plan) {
  if (static_cast<int64_t>(config.layer_is_moe.size()) != config.num_layers)
    return absl::InvalidArgumentError("the config's MoE layer map does not match its layers");
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<ExpertShard> shard, Create(config, plan, options));
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (!config.layer_is_moe[l]) continue;
    std::vector<absl::Status> status(config.moe.num_experts);
#pragma omp parallel for schedule(dynamic)
    for (int64_t e = 0; e < config.moe.num_experts; ++e) {
      absl::StatusOr<MlpWeights> expert = source(l, e);
      if (!expert.ok()) {
        status[e] = expert.status();
      } else if (!expert->empty()) {
        status[e] = shard->Add(l, e, std::move(*expert));
      }
    }
    for (const absl::Status& s : status) TANDEM_RETURN_IF_ERROR(s);
  }
  return shard;
}

ExpertKernel ExpertShard::KernelFor(int64_t tokens) const {
  // On AMX machines, experts with enough tokens for the tiles take bf16 activations (AMX has no
  // f32 path); fewer tokens keep exact f32 activations (decode is bandwidth-bound either way).
  ExpertKernel k = kernel_;
  if (k.isa == CpuKernel::kAmx && tokens >= AmxMinTokens())
    k.activations = ActivationPrecision::kBf16;
  return k;
}

namespace {

// Rows of one (expert, row block) task. 32 for the row kernels (decode: many small tasks balance
// best); experts on the AMX tiles take AmxTuning::task_rows (moe_kernel_impl.h): see Run.
constexpr int64_t kRowTaskRows = 32;
// Token rows of one gather or act-forms task (a multiple of the 16-row tiles): the last expert's
// act forms, which the down tasks of that expert wait for, are spread over several threads.
constexpr int64_t kFormTaskRows = 64;

}  // namespace

absl::Status ExpertShard::Run(const MoeBatch& b, float* out, MoeRunPhases* phases) const {
  const int64_t h = config_.hidden_size;
  if (b.layer < 0 || b.layer >= config_.num_layers || packed_[b.layer].empty())
    return absl::InvalidArgumentError(absl::StrCat("layer ", b.layer, " is not a MoE layer"));
  if (b.num_tokens < 0 || b.top_k < 0 || b.top_k > config_.moe.num_experts)
    return absl::InvalidArgumentError("bad token count or top-k");
  const int64_t num_experts = config_.moe.num_experts, slots = b.num_tokens * b.top_k;
  constexpr int64_t kTileRows = ActivationBuffer::kTileTokens;
  const std::vector<MlpWeights>& unpacked = experts_[b.layer];
  const std::vector<PackedExpert>& packed = packed_[b.layer];
  // Group the (token, choice) slots by expert (a counting sort), so each expert's weights are
  // streamed once: the rows of the active experts lie back to back in x, act and y.
  std::vector<int64_t> first_row(num_experts, 0);
  for (int64_t s = 0; s < slots; ++s) {
    const int32_t e = b.expert_ids[s];
    if (e < 0 || e >= num_experts)
      return absl::InvalidArgumentError(absl::StrCat("expert id ", e, " out of range"));
    ++first_row[e];
  }
  struct Active {
    int64_t expert, first_row, n;
    bool packed;
    ActivationForms forms;   // of its rows of x and act, besides f32 (packed experts only)
    bool act_tiles = false;  // gate/up writes act straight into its tile form (GateUpWritesTiles)
    AmxTileRows act_out;     // where (set by the gather phase)
  };
  std::vector<Active> active;
  int64_t rows = 0, inter = 0;
  bool any_unpacked = false;
  ActivationForms all_forms;  // the union over the active experts
  for (int64_t e = 0; e < num_experts; ++e) {
    const int64_t n = first_row[e];
    const bool held = !packed[e].empty() || !unpacked[e].empty();
    if (!held || n == 0) {
      first_row[e] = -1;
      continue;
    }
    inter = packed[e].empty() ? unpacked[e].gate.rows : packed[e].intermediate();
    const ActivationForms forms =
        packed[e].empty() ? ActivationForms{} : ActivationFormsFor(KernelFor(n), format_.dtype, n);
    // The AMX tile form is laid out in 16-row tiles of the whole buffer: such an expert's rows
    // start on a tile (the skipped rows are never read).
    if (forms.amx_tiles) rows = (rows + kTileRows - 1) / kTileRows * kTileRows;
    first_row[e] = rows;
    any_unpacked |= packed[e].empty();
    all_forms.bf16_pairs |= forms.bf16_pairs;
    all_forms.int8 |= forms.int8;
    all_forms.amx_tiles |= forms.amx_tiles;
    active.push_back({e, rows, n, !packed[e].empty(), forms,
                      !packed[e].empty() && GateUpWritesTiles(KernelFor(n), packed[e], n)});
    rows += n;
  }
  // row_of_slot[s]: the row of slot s (-1: an expert this shard does not hold); token_of_row.
  std::vector<int64_t> row_of_slot(slots), token_of_row(rows);
  for (int64_t s = 0; s < slots; ++s) {
    int64_t& next_row = first_row[b.expert_ids[s]];  // now the expert's next free row
    row_of_slot[s] = next_row;
    if (next_row < 0) continue;
    token_of_row[next_row++] = s / b.top_k;
  }

  // The scratch is sized for the most rows a batch of this many slots can take (each expert's
  // rows padded to a whole tile), not for this batch's rows: those move from call to call with
  // the routing, and a buffer regrown by a few rows would be first touched -- page faults,
  // zeroing and all -- inside the call.
  const int64_t rows_bound = slots + (kTileRows - 1) * std::min(num_experts, slots);
  absl::MutexLock lock(&scratch_mu_);
  Scratch& sc = scratch_;
  float* x = sc.x.Reserve(rows_bound * h);
  float* y = sc.y.Reserve(rows_bound * h);
  float* act = sc.act.Reserve(rows_bound * inter);
  float* up = any_unpacked ? sc.up.Reserve(rows_bound * inter) : nullptr;
  sc.x_forms.Reset(rows, h, all_forms, rows_bound);
  sc.act_forms.Reset(rows, inter, all_forms, rows_bound);
  // Work is cut into tasks of four stages (moe_task_stream.h): per (expert, block of its rows),
  // gather its tokens into x and their activation forms; per (expert, block of intermediate rows),
  // act = silu(gate x) * up x; per (expert, block of its rows), the forms of act (none for experts
  // of bf16 weights on AMX: gate/up wrote act straight into the tile form down reads,
  // GateUpRowsToTiles); per (expert, block of hidden rows), y = down act. Then, after a barrier,
  // per token: out[t] = sum over its choices of w * y. Rows per matrix task: 32 for the row
  // kernels, AmxTuning::task_rows (256) for AMX experts (whole 16-block groups, amx_tiles.h: each
  // A tile feeds 16 blocks). Measured on the 16-core AMX Xeon (Qwen2-57B layer, 4096 tokens,
  // interleaved): with the K-blocked 16-block groups, 128-row tasks beat 32-row ones with 2-block
  // groups by 4-10% (bf16 312-332 vs 343-373 ms), the down phase by 15-25%; 256-row tasks with
  // chunks of 8 beat 128-row ones by up to 17% more (bench/RESULTS.md, fourth pass).
  // Only the packed experts' rows need the extra activation forms; act's come from gate/up
  // itself where it writes the tile form (act_tiles), and such experts get no act-forms tasks
  // (their down tasks wait for gate/up directly): a task that does nothing could still be held by
  // a thread claiming ahead while it runs a long matrix task, and keep that expert's down waiting.
  auto needs_forms = [&](const Active& a) {
    return a.forms.bf16_pairs || a.forms.int8 || a.forms.amx_tiles;
  };
  const moe_internal::AmxTuning amx_tuning = moe_internal::GetAmxTuning();
  std::vector<MoeTask> by_stage[kMoeStages];
  for (size_t i = 0; i < active.size(); ++i) {
    const Active& a = active[i];
    const int64_t e = static_cast<int64_t>(i);
    const int64_t task_rows = a.forms.amx_tiles ? amx_tuning.task_rows : kRowTaskRows;
    auto cut = [&](MoeStage stage, int64_t rows_total, int64_t step) {
      for (int64_t r = 0; r < rows_total; r += step)
        by_stage[stage].push_back({stage, e, r, std::min(rows_total, r + step)});
    };
    cut(kGatherStage, a.n, kFormTaskRows);
    cut(kGateUpStage, inter, task_rows);
    if (needs_forms(a) && !a.act_tiles) cut(kActFormsStage, a.n, kFormTaskRows);
    cut(kDownStage, h, task_rows);
  }
  MoeTaskStream stream(by_stage, static_cast<int64_t>(active.size()), amx_tuning.dataflow);
  // With AMX experts, each thread claims its next task early and passes it to the kernel, which
  // prefetches that task's first weights (ForTasksAhead).
  const bool claim_ahead = all_forms.amx_tiles && amx_tuning.claim_ahead;
  auto rows_ahead = [&](int64_t after) {
    if (after < 0) return RowsAhead{};
    const MoeTask& t = stream.task(after);
    const Active& a = active[t.expert];
    if ((t.stage != kGateUpStage && t.stage != kDownStage) || !a.packed) return RowsAhead{};
    return RowsAhead{&packed[a.expert], t.r0, t.r1};
  };
  bool any_amx_int8 = false;
  for (const Active& a : active) any_amx_int8 |= a.forms.amx_tiles && a.forms.int8;
  // The tasks of each stage; `after`: the task this thread runs next (MoeTaskStream::Run).
  auto gather = [&](Active& a, int64_t r0, int64_t r1) {
    // Rows [r0, r1) of the expert; blocks start on a multiple of 16 rows (kFormTaskRows), as the
    // tile form wants. Gate/up waits for all of them, so one block prepares act's direct tiles.
    if (a.act_tiles && r0 == 0)
      a.act_out = sc.act_forms.DirectTiles(a.first_row, a.first_row + a.n);
    const int64_t first = a.first_row + r0, last = a.first_row + r1;
    if (a.forms.amx_tiles) {  // straight from the tokens' rows into the tile form
      sc.x_forms.FillAmxTiles(b.hidden, a.forms.int8 ? &sc.token_q8 : nullptr,
                              token_of_row.data() + first, first, last);
      return;
    }
    for (int64_t r = first; r < last; ++r)
      std::copy(b.hidden + token_of_row[r] * h, b.hidden + (token_of_row[r] + 1) * h, x + r * h);
    if (needs_forms(a)) sc.x_forms.Fill(x, first, last);
  };
  auto gate_up = [&](const Active& a, int64_t r0, int64_t r1, int64_t after) {
    float* g = act + a.first_row * inter;
    if (a.act_tiles) {  // act's f32 rows are skipped: down reads only its tile form
      GateUpRowsToTiles(KernelFor(a.n), packed[a.expert], sc.x_forms.View(x, a.first_row, a.n), r0,
                        r1, a.act_out, rows_ahead(after));
      return;
    }
    if (a.packed) {
      GateUpRows(KernelFor(a.n), packed[a.expert], sc.x_forms.View(x, a.first_row, a.n), r0, r1, g,
                 rows_ahead(after));
      return;
    }
    const MlpWeights& w = unpacked[a.expert];
    const float* xe = x + a.first_row * h;
    float* u = up + a.first_row * inter;
    LinearRowRange(xe, a.n, w.gate, r0, r1, g);
    LinearRowRange(xe, a.n, w.up, r0, r1, u);
    for (int64_t i = 0; i < a.n; ++i) SiluMul(g + i * inter + r0, u + i * inter + r0, r1 - r0);
  };
  auto act_forms = [&](const Active& a, int64_t r0, int64_t r1) {
    const int64_t first = a.first_row + r0, last = a.first_row + r1;
    if (a.forms.amx_tiles)
      sc.act_forms.FillAmxTiles(act, nullptr, nullptr, first, last);
    else
      sc.act_forms.Fill(act, first, last);
  };
  auto down = [&](const Active& a, int64_t r0, int64_t r1, int64_t after) {
    float* ye = y + a.first_row * h;
    if (a.packed) {
      DownRows(KernelFor(a.n), packed[a.expert], sc.act_forms.View(act, a.first_row, a.n), r0, r1,
               ye, rows_ahead(after));
    } else {
      LinearRowRange(act + a.first_row * inter, a.n, unpacked[a.expert].down, r0, r1, ye);
    }
  };
  // Stage ends (wall clock) for MoeRunPhases: per thread, when it finished its last task of each
  // stage (a cache line per thread: each writes its own after every task).
  struct alignas(64) StageEnds {
    double at[kMoeStages] = {};
  };
  std::vector<StageEnds> stage_end(phases != nullptr ? omp_get_max_threads() : 0);
  auto run_task = [&](const MoeTask& t, int64_t after) {
    Active& a = active[t.expert];
    switch (t.stage) {
      case kGatherStage:
        gather(a, t.r0, t.r1);
        break;
      case kGateUpStage:
        gate_up(a, t.r0, t.r1, after);
        break;
      case kActFormsStage:
        act_forms(a, t.r0, t.r1);
        break;
      default:
        down(a, t.r0, t.r1, after);
        break;
    }
    if (phases != nullptr) {
      double& end = stage_end[omp_get_thread_num()].at[t.stage];
      end = std::max(end, omp_get_wtime());
    }
  };
  const int64_t work = rows * h * inter * 3;
  std::atomic<int64_t> next[kMoeStages + 1] = {};
  constexpr int64_t kTokensPerBlock = 32;
  const int64_t token_blocks = (b.num_tokens + kTokensPerBlock - 1) / kTokensPerBlock;
  if (any_amx_int8) sc.token_q8.Reset(b.num_tokens, h, ActivationForms{.int8 = true});
  double start = 0, stream_end = 0, combine_end = 0;
#pragma omp parallel if (work >= (1 << 18))
  {
    if (phases != nullptr && omp_get_thread_num() == 0) start = omp_get_wtime();
    // AMX experts of int8 weights take each token's int8 row, quantized once here (a token goes
    // to top_k experts). bf16 ones convert a token's f32 row into each of its rows' tiles: a
    // bf16 copy of every token first measured no faster (the gather writes the tiles either way).
    if (any_amx_int8) {
      ForTasks(token_blocks, schedule_, &next[kMoeStages], [&](int64_t i) {
        sc.token_q8.Fill(b.hidden, i * kTokensPerBlock,
                         std::min(b.num_tokens, (i + 1) * kTokensPerBlock));
      });
    }
    stream.Run(schedule_, claim_ahead, next, run_task);
    if (phases != nullptr && omp_get_thread_num() == 0) stream_end = omp_get_wtime();
    std::vector<const float*> token_rows(b.top_k);  // this thread's: a token's rows of y
#pragma omp for schedule(static)
    for (int64_t t = 0; t < b.num_tokens; ++t) {
      for (int64_t j = 0; j < b.top_k; ++j) {
        const int64_t row = row_of_slot[t * b.top_k + j];
        token_rows[j] = row < 0 ? nullptr : y + row * h;  // null: an expert held elsewhere
      }
      WeightedRowSum(token_rows.data(), b.weights + t * b.top_k, b.top_k, h, out + t * h);
    }
    // after the loop's implied barrier
    if (phases != nullptr && omp_get_thread_num() == 0) combine_end = omp_get_wtime();
  }
  if (phases != nullptr) {
    // Each stage's phase runs from the end of the one before to when its last task finished (with
    // the dataflow, the stages overlap: a phase is the time by which the stage outlasted the one
    // before); down ends with the stream, so the phases sum to the call's parallel part.
    double ends[kMoeStages] = {};
    double previous = start;
    for (int k = 0; k < kDownStage; ++k) {
      ends[k] = previous;
      for (const StageEnds& thread_ends : stage_end) ends[k] = std::max(ends[k], thread_ends.at[k]);
      previous = ends[k];
    }
    ends[kDownStage] = stream_end;
    phases->gather_ms = (ends[kGatherStage] - start) * 1e3;
    phases->gate_up_ms = (ends[kGateUpStage] - ends[kGatherStage]) * 1e3;
    phases->act_forms_ms = (ends[kActFormsStage] - ends[kGateUpStage]) * 1e3;
    phases->down_ms = (ends[kDownStage] - ends[kActFormsStage]) * 1e3;
    phases->combine_ms = (combine_end - stream_end) * 1e3;
  }
  return absl::OkStatus();
}

}  // namespace tandem
