#include "numa_worker/expert_shard.h"

#include <omp.h>

#include <atomic>
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

absl::StatusOr<MoeSchedule> ParseMoeSchedule(std::string_view name) {
  if (name == "dynamic") return MoeSchedule::kDynamic;
  if (name == "static") return MoeSchedule::kStatic;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown schedule '", std::string(name), "': expected dynamic or static"));
}

std::string_view MoeScheduleName(MoeSchedule schedule) {
  return schedule == MoeSchedule::kStatic ? "static" : "dynamic";
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

// Runs fn(i, after) for i < count on the threads of the enclosing parallel region (or the one
// thread outside one), where `after` is the index the thread runs after i (-1: none or unknown).
// Dynamic: each thread takes the next index from `next` (zero before the region; shared by all
// threads); with claim_ahead it claims its next index before it runs the current one (so at the
// end a thread may hold one task more), which lets the AMX kernels fetch that task's first weights
// into L2 while i's last K block runs (RowsAhead, moe_kernel.h); without, after is always -1.
// Static: thread j takes the j-th contiguous slice, after = the slice's next index. Ends with a
// barrier.
template <typename Fn>
void ForTasksAhead(int64_t count, MoeSchedule schedule, bool claim_ahead,
                   std::atomic<int64_t>* next, Fn fn) {
  if (schedule == MoeSchedule::kDynamic && claim_ahead) {
    int64_t i = next->fetch_add(1, std::memory_order_relaxed);
    while (i < count) {
      const int64_t after = next->fetch_add(1, std::memory_order_relaxed);
      fn(i, after < count ? after : -1);
      i = after;
    }
  } else if (schedule == MoeSchedule::kDynamic) {
    for (int64_t i = next->fetch_add(1, std::memory_order_relaxed); i < count;
         i = next->fetch_add(1, std::memory_order_relaxed))
      fn(i, int64_t{-1});
  } else {
    const int64_t threads = omp_get_num_threads(), j = omp_get_thread_num();
    const int64_t end = count * (j + 1) / threads;
    for (int64_t i = count * j / threads; i < end; ++i) fn(i, i + 1 < end ? i + 1 : -1);
  }
#pragma omp barrier
}

// ForTasksAhead for phases that need no look-ahead: fn(i).
template <typename Fn>
void ForTasks(int64_t count, MoeSchedule schedule, std::atomic<int64_t>* next, Fn fn) {
  ForTasksAhead(count, schedule, false, next, [&](int64_t i, int64_t) { fn(i); });
}

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
  // Work is cut into tasks handed out by the schedule: phase 0, per expert: gather its tokens into
  // x and their activation forms; phase 1, per (expert, block of rows): act = silu(gate x) * up x;
  // phase 2, per expert: forms of act (none for experts of bf16 weights on AMX: phase 1 wrote act
  // straight into the tile form down reads, GateUpRowsToTiles); phase 3, per (expert, block of
  // rows): y = down act; phase 4, per token: out[t] = sum over its choices of w * y. Rows per task:
  // 32 for the row kernels, AmxTuning::task_rows (256) for AMX experts (whole 16-block groups,
  // amx_tiles.h: each A tile feeds 16 blocks). Measured on the 16-core AMX Xeon (Qwen2-57B layer,
  // 4096 tokens, interleaved): with the K-blocked 16-block groups, 128-row tasks beat 32-row ones
  // with 2-block groups by 4-10% (bf16 312-332 vs 343-373 ms), the down phase by 15-25%; 256-row
  // tasks with chunks of 8 beat 128-row ones by up to 17% more (bench/RESULTS.md, fourth pass).
  struct Task {
    int64_t active, r0, r1;
  };
  std::vector<Task> up_tasks, down_tasks;
  const moe_internal::AmxTuning amx_tuning = moe_internal::GetAmxTuning();
  const int64_t amx_task_rows = amx_tuning.task_rows;
  for (size_t i = 0; i < active.size(); ++i) {
    const Active& a = active[i];
    const int64_t task_rows =
        a.forms.amx_tiles ? amx_task_rows : kRowTaskRows;  // amx_tiles: the expert runs on AMX
    for (int64_t r = 0; r < inter; r += task_rows)
      up_tasks.push_back({static_cast<int64_t>(i), r, std::min(inter, r + task_rows)});
    for (int64_t r = 0; r < h; r += task_rows)
      down_tasks.push_back({static_cast<int64_t>(i), r, std::min(h, r + task_rows)});
  }
  // With AMX experts, each thread claims its next matrix task early and passes it to the kernel,
  // which prefetches that task's first weights (ForTasksAhead).
  const bool claim_ahead = all_forms.amx_tiles && amx_tuning.claim_ahead;
  auto rows_ahead = [&](const std::vector<Task>& tasks, int64_t after) {
    if (after < 0 || !active[tasks[after].active].packed) return RowsAhead{};
    const Task& t = tasks[after];
    return RowsAhead{&packed[active[t.active].expert], t.r0, t.r1};
  };
  // Phase 1 and 3 tasks; `after`: the task this thread runs next (ForTasksAhead).
  auto gate_up_task = [&](int64_t task, int64_t after) {
    const Active& a = active[up_tasks[task].active];
    const int64_t r0 = up_tasks[task].r0, r1 = up_tasks[task].r1;
    float* g = act + a.first_row * inter;
    if (a.act_tiles) {  // act's f32 rows are skipped: down reads only its tile form
      GateUpRowsToTiles(KernelFor(a.n), packed[a.expert], sc.x_forms.View(x, a.first_row, a.n), r0,
                        r1, a.act_out, rows_ahead(up_tasks, after));
      return;
    }
    if (a.packed) {
      GateUpRows(KernelFor(a.n), packed[a.expert], sc.x_forms.View(x, a.first_row, a.n), r0, r1, g,
                 rows_ahead(up_tasks, after));
      return;
    }
    const MlpWeights& w = unpacked[a.expert];
    const float* xe = x + a.first_row * h;
    float* u = up + a.first_row * inter;
    LinearRowRange(xe, a.n, w.gate, r0, r1, g);
    LinearRowRange(xe, a.n, w.up, r0, r1, u);
    for (int64_t i = 0; i < a.n; ++i) SiluMul(g + i * inter + r0, u + i * inter + r0, r1 - r0);
  };
  auto down_task = [&](int64_t task, int64_t after) {
    const Active& a = active[down_tasks[task].active];
    const int64_t r0 = down_tasks[task].r0, r1 = down_tasks[task].r1;
    float* ye = y + a.first_row * h;
    if (a.packed) {
      DownRows(KernelFor(a.n), packed[a.expert], sc.act_forms.View(act, a.first_row, a.n), r0, r1,
               ye, rows_ahead(down_tasks, after));
    } else {
      LinearRowRange(act + a.first_row * inter, a.n, unpacked[a.expert].down, r0, r1, ye);
    }
  };
  // Only the packed experts' rows need the extra activation forms.
  auto needs_forms = [&](const Active& a) {
    return a.forms.bf16_pairs || a.forms.int8 || a.forms.amx_tiles;
  };
  const int64_t work = rows * h * inter * 3;
  const int64_t num_active = static_cast<int64_t>(active.size());
  std::atomic<int64_t> next[5] = {0, 0, 0, 0, 0};
  bool any_amx_int8 = false;
  for (const Active& a : active) any_amx_int8 |= a.forms.amx_tiles && a.forms.int8;
  constexpr int64_t kTokensPerBlock = 32;
  const int64_t token_blocks = (b.num_tokens + kTokensPerBlock - 1) / kTokensPerBlock;
  if (any_amx_int8) sc.token_q8.Reset(b.num_tokens, h, ActivationForms{.int8 = true});
  // ForTasks ends on a barrier, so one thread's clock after each phase times the phase.
  double marks[6] = {};
  auto mark = [&](int i) {
    if (phases != nullptr && omp_get_thread_num() == 0) marks[i] = omp_get_wtime();
  };
#pragma omp parallel if (work >= (1 << 18))
  {
    mark(0);
    // AMX experts of int8 weights take each token's int8 row, quantized once here (a token goes
    // to top_k experts). bf16 ones convert a token's f32 row into each of its rows' tiles: a
    // bf16 copy of every token first measured no faster (the gather writes the tiles either way).
    if (any_amx_int8) {
      ForTasks(token_blocks, schedule_, &next[4], [&](int64_t i) {
        sc.token_q8.Fill(b.hidden, i * kTokensPerBlock,
                         std::min(b.num_tokens, (i + 1) * kTokensPerBlock));
      });
    }
    ForTasks(num_active, schedule_, &next[0], [&](int64_t i) {
      Active& a = active[i];
      if (a.act_tiles) a.act_out = sc.act_forms.DirectTiles(a.first_row, a.first_row + a.n);
      if (a.forms.amx_tiles) {  // straight from the tokens' rows into the tile form
        sc.x_forms.FillAmxTiles(b.hidden, a.forms.int8 ? &sc.token_q8 : nullptr,
                                token_of_row.data() + a.first_row, a.first_row, a.first_row + a.n);
        return;
      }
      for (int64_t r = a.first_row; r < a.first_row + a.n; ++r)
        std::copy(b.hidden + token_of_row[r] * h, b.hidden + (token_of_row[r] + 1) * h, x + r * h);
      if (needs_forms(a)) sc.x_forms.Fill(x, a.first_row, a.first_row + a.n);
    });
    mark(1);
    ForTasksAhead(static_cast<int64_t>(up_tasks.size()), schedule_, claim_ahead, &next[1],
                  gate_up_task);
    mark(2);
    ForTasks(num_active, schedule_, &next[2], [&](int64_t i) {
      const Active& a = active[i];
      if (a.act_tiles) return;  // written by gate/up
      if (a.forms.amx_tiles)
        sc.act_forms.FillAmxTiles(act, nullptr, nullptr, a.first_row, a.first_row + a.n);
      else if (needs_forms(a))
        sc.act_forms.Fill(act, a.first_row, a.first_row + a.n);
    });
    mark(3);
    ForTasksAhead(static_cast<int64_t>(down_tasks.size()), schedule_, claim_ahead, &next[3],
                  down_task);
    mark(4);
    std::vector<const float*> token_rows(b.top_k);  // this thread's: a token's rows of y
#pragma omp for schedule(static)
    for (int64_t t = 0; t < b.num_tokens; ++t) {
      for (int64_t j = 0; j < b.top_k; ++j) {
        const int64_t row = row_of_slot[t * b.top_k + j];
        token_rows[j] = row < 0 ? nullptr : y + row * h;  // null: an expert held elsewhere
      }
      WeightedRowSum(token_rows.data(), b.weights + t * b.top_k, b.top_k, h, out + t * h);
    }
    mark(5);  // after the loop's implied barrier
  }
  if (phases != nullptr) {
    double* fields[5] = {&phases->gather_ms, &phases->gate_up_ms, &phases->act_forms_ms,
                         &phases->down_ms, &phases->combine_ms};
    for (int i = 0; i < 5; ++i) *fields[i] = (marks[i + 1] - marks[i]) * 1e3;
  }
  return absl::OkStatus();
}

}  // namespace tandem
