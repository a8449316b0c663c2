#include "bench/onednn_moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/bf16.h"
#include "kernels/cpu/moe_format.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace tandem::bench {

using dnnl::memory;
using Dt = memory::data_type;
using Tag = memory::format_tag;

namespace {

// Row loops run on the OpenMP pool only when they are big enough to pay for a parallel region.
constexpr int64_t kParallelElements = 1 << 15;

absl::Status DnnlError(const dnnl::error& e, const char* what) {
  return absl::InternalError(absl::StrCat("oneDNN ", what, ": ", e.what()));
}

// Symmetric per-row int8, dense [rows x cols]: the same quantization as Tandem's activations
// (QuantizeActivations, moe_format.h: s[r] = max|x[r]| / 127), without its row padding.
void QuantizeRowsS8(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scale) {
  const int64_t stride = Int8ActivationStride(cols);
#pragma omp parallel if (rows * cols >= kParallelElements)
  {
    std::vector<int8_t> padded(stride);
    std::vector<int32_t> sums(stride / 32);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      QuantizeActivations(x + r * cols, 1, cols, padded.data(), scale + r, sums.data());
      std::copy(padded.begin(), padded.begin() + cols, q + r * cols);
    }
  }
}

}  // namespace

std::string OnednnVersion() {
  const dnnl_version_t* v = dnnl::version();
  return absl::StrCat(v->major, ".", v->minor, ".", v->patch);
}

struct OnednnMoe::State {
  MoeShape s;
  int64_t experts = 0;
  OnednnDtype dtype = OnednnDtype::kBf16;
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  memory::desc wei_gu, wei_down;  // the layouts oneDNN chose (any) for [H -> I] and [I -> H]

  struct Expert {
    memory gate, up, down;                                // weights in wei_gu / wei_down
    std::vector<float> gate_scale, up_scale, down_scale;  // int8: per output channel
  };
  std::vector<Expert> w;

  struct Prims {
    dnnl::matmul::primitive_desc gu_pd, down_pd;
    dnnl::matmul gu, down;
  };
  std::map<int64_t, Prims> prims;  // by n
  int64_t created_in_run = 0;

  // Scratch, reused between calls.
  std::vector<uint16_t> x_bf16;  // [tokens x H]
  std::vector<int8_t> x_s8;      // [tokens x H]
  std::vector<float> x_scale;    // [tokens]
  std::vector<uint16_t> xe_bf16, act_bf16;
  std::vector<int8_t> xe_s8, act_s8;
  std::vector<float> xe_scale, act_scale, gate, up, y;
  std::vector<int64_t> count, offset;
  std::vector<int32_t> slot_token;
  std::vector<float> slot_weight;

  Dt src_dt() const { return dtype == OnednnDtype::kBf16 ? Dt::bf16 : Dt::s8; }
  Dt wei_dt() const { return dtype == OnednnDtype::kBf16 ? Dt::bf16 : Dt::s8; }

  // The matmul [n x k] * [k x n_out] -> f32 with weights `wei` (format_tag::any when empty).
  dnnl::matmul::primitive_desc MakePd(int64_t n, int64_t k, int64_t n_out,
                                      const memory::desc* wei) const {
    const memory::desc src({n, k}, src_dt(), Tag::ab);
    const memory::desc any_wei({k, n_out}, wei_dt(), Tag::any);
    const memory::desc dst({n, n_out}, Dt::f32, Tag::ab);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei ? *wei : any_wei, dst), eng);
  }

  Prims& PrimsFor(int64_t n) {
    auto it = prims.find(n);
    if (it != prims.end()) return it->second;
    Prims p;
    p.gu_pd = MakePd(n, s.hidden, s.intermediate, &wei_gu);
    p.down_pd = MakePd(n, s.intermediate, s.hidden, &wei_down);
    p.gu = dnnl::matmul(p.gu_pd);
    p.down = dnnl::matmul(p.down_pd);
    return prims.emplace(n, std::move(p)).first->second;
  }

  // Reorders a row-major [n_out x k] matrix (the transposed weights: tag ba of {k, n_out}) of
  // wei_dt() into a new memory of layout `layout`.
  memory Reorder(const void* rows, int64_t k, int64_t n_out, const memory::desc& layout) {
    memory src({{k, n_out}, wei_dt(), Tag::ba}, eng, const_cast<void*>(rows));
    memory dst(layout, eng);
    dnnl::reorder(src, dst).execute(strm, src, dst);
    strm.wait();
    return dst;
  }

  // One matrix (bf16 row-major [n_out x k]) into oneDNN's layout (and scales for int8).
  void AddMatrix(const WeightMatrix& m, const memory::desc& layout, memory* out,
                 std::vector<float>* scale_out) {
    if (dtype == OnednnDtype::kBf16) {
      *out = Reorder(m.bf16.data(), m.cols, m.rows, layout);
      return;
    }
    std::vector<float> f(m.rows * m.cols);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m.rows * m.cols; ++i) f[i] = Bf16ToFloat(m.bf16[i]);
    std::vector<int8_t> q(m.rows * m.cols);
    scale_out->resize(m.rows);
    QuantizeRowsS8(f.data(), m.rows, m.cols, q.data(), scale_out->data());
    *out = Reorder(q.data(), m.cols, m.rows, layout);
  }
};

OnednnMoe::OnednnMoe(std::unique_ptr<State> state) : st_(std::move(state)) {}
OnednnMoe::~OnednnMoe() = default;

absl::StatusOr<std::unique_ptr<OnednnMoe>> OnednnMoe::Create(
    const MoeShape& s, int64_t experts, OnednnDtype dtype,
    const std::function<MlpWeights(int64_t)>& expert) {
  auto st = std::make_unique<State>();
  st->s = s;
  st->experts = experts;
  st->dtype = dtype;
  try {
    // oneDNN's preferred weight layouts, chosen for a 16-token matmul (the brgemm matmul's blocked
    // weight layout depends on K, N and the data types, not on the token count).
    st->wei_gu = st->MakePd(16, s.hidden, s.intermediate, nullptr).weights_desc();
    st->wei_down = st->MakePd(16, s.intermediate, s.hidden, nullptr).weights_desc();
    st->w.resize(experts);
    for (int64_t e = 0; e < experts; ++e) {
      const MlpWeights m = expert(e);
      if (m.gate.bf16.empty() || m.up.bf16.empty() || m.down.bf16.empty())
        return absl::InvalidArgumentError("oneDNN baseline: experts must be bf16");
      State::Expert& x = st->w[e];
      st->AddMatrix(m.gate, st->wei_gu, &x.gate, &x.gate_scale);
      st->AddMatrix(m.up, st->wei_gu, &x.up, &x.up_scale);
      st->AddMatrix(m.down, st->wei_down, &x.down, &x.down_scale);
    }
  } catch (const dnnl::error& e) {
    return DnnlError(e, "setup");
  }
  st->count.resize(experts);
  st->offset.resize(experts + 1);
  return std::unique_ptr<OnednnMoe>(new OnednnMoe(std::move(st)));
}

absl::Status OnednnMoe::Prepare(int64_t max_n) {
  try {
    for (int64_t n = 1; n <= max_n; ++n) st_->PrimsFor(n);
  } catch (const dnnl::error& e) {
    return DnnlError(e, "primitive creation");
  }
  return absl::OkStatus();
}

int64_t OnednnMoe::weight_bytes() const {
  int64_t b = 0;
  for (const State::Expert& x : st_->w) {
    for (const memory* m : {&x.gate, &x.up, &x.down})
      if (*m) b += static_cast<int64_t>(m->get_desc().get_size());
    b += 4 * static_cast<int64_t>(x.gate_scale.size() + x.up_scale.size() + x.down_scale.size());
  }
  return b;
}

std::string OnednnMoe::ImplInfo(int64_t n) {
  try {
    State::Prims& p = st_->PrimsFor(n);
    return absl::StrCat("gate/up: ", p.gu_pd.impl_info_str(),
                        ", down: ", p.down_pd.impl_info_str());
  } catch (const dnnl::error& e) {
    return absl::StrCat("error: ", e.what());
  }
}

int64_t OnednnMoe::primitives_created_in_run() const { return st_->created_in_run; }

absl::Status OnednnMoe::Run(const MoeInputs& in, float* out) {
  State& st = *st_;
  const int64_t T = in.tokens, H = st.s.hidden, I = st.s.intermediate;
  const int64_t K = static_cast<int64_t>(in.ids.size()) / std::max<int64_t>(1, T);
  const bool int8 = st.dtype == OnednnDtype::kInt8;
  std::fill(out, out + T * H, 0.0f);

  // Each token's activations in the matmul's input type, once.
  if (int8) {
    st.x_s8.resize(T * H);
    st.x_scale.resize(T);
    QuantizeRowsS8(in.hidden.data(), T, H, st.x_s8.data(), st.x_scale.data());
  } else {
    st.x_bf16.resize(T * H);
#pragma omp parallel for schedule(static) if (T * H >= kParallelElements)
    for (int64_t i = 0; i < T * H; ++i) st.x_bf16[i] = FloatToBf16(in.hidden[i]);
  }

  // Group the (token, expert) slots by expert, tokens ascending.
  std::fill(st.count.begin(), st.count.end(), 0);
  for (int32_t e : in.ids) {
    if (e < 0 || e >= st.experts) return absl::InvalidArgumentError("expert id out of range");
    ++st.count[e];
  }
  st.offset[0] = 0;
  for (int64_t e = 0; e < st.experts; ++e) st.offset[e + 1] = st.offset[e] + st.count[e];
  st.slot_token.resize(T * K);
  st.slot_weight.resize(T * K);
  std::vector<int64_t>& fill = st.count;  // reused as the next free slot per expert
  for (int64_t e = 0; e < st.experts; ++e) fill[e] = st.offset[e];
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < K; ++j) {
      const int32_t e = in.ids[t * K + j];
      st.slot_token[fill[e]] = static_cast<int32_t>(t);
      st.slot_weight[fill[e]++] = in.weights[t * K + j];
    }
  }

  try {
    for (int64_t e = 0; e < st.experts; ++e) {
      const int64_t n = st.offset[e + 1] - st.offset[e];
      if (n == 0) continue;
      const int32_t* tok = st.slot_token.data() + st.offset[e];
      const float* wt = st.slot_weight.data() + st.offset[e];
      if (st.prims.find(n) == st.prims.end()) ++st.created_in_run;
      State::Prims& p = st.PrimsFor(n);
      const State::Expert& x = st.w[e];

      // Gather X_e.
      void* xe;
      if (int8) {
        st.xe_s8.resize(n * H);
        st.xe_scale.resize(n);
        for (int64_t i = 0; i < n; ++i) {
          std::memcpy(st.xe_s8.data() + i * H, st.x_s8.data() + tok[i] * H, H);
          st.xe_scale[i] = st.x_scale[tok[i]];
        }
        xe = st.xe_s8.data();
      } else {
        st.xe_bf16.resize(n * H);
        for (int64_t i = 0; i < n; ++i)
          std::memcpy(st.xe_bf16.data() + i * H, st.x_bf16.data() + tok[i] * H, H * 2);
        xe = st.xe_bf16.data();
      }

      // gate, up = X_e * W^T.
      st.gate.resize(n * I);
      st.up.resize(n * I);
      memory src(p.gu_pd.src_desc(), st.eng, xe);
      memory gate(p.gu_pd.dst_desc(), st.eng, st.gate.data());
      memory up(p.gu_pd.dst_desc(), st.eng, st.up.data());
      p.gu.execute(st.strm,
                   {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, x.gate}, {DNNL_ARG_DST, gate}});
      p.gu.execute(st.strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, x.up}, {DNNL_ARG_DST, up}});
      st.strm.wait();

      // act = silu(gate) * up (int8: the integer dots times the token's and the row's scales;
      // act then quantized per token).
      void* act;
      if (int8) {
        st.act_s8.resize(n * I);
        st.act_scale.resize(n);
      } else {
        st.act_bf16.resize(n * I);
      }
#pragma omp parallel for schedule(static) if (n * I >= kParallelElements)
      for (int64_t i = 0; i < n; ++i) {
        float* g = st.gate.data() + i * I;
        const float* u = st.up.data() + i * I;
        if (int8) {
          const float sx = st.xe_scale[i];
          const float* sg = x.gate_scale.data();
          const float* su = x.up_scale.data();
          for (int64_t r = 0; r < I; ++r) {
            const float gv = g[r] * sx * sg[r];
            g[r] = gv / (1.0f + std::exp(-gv)) * (u[r] * sx * su[r]);
          }
        } else {
          for (int64_t r = 0; r < I; ++r) g[r] = g[r] / (1.0f + std::exp(-g[r])) * u[r];
          for (int64_t r = 0; r < I; ++r) st.act_bf16[i * I + r] = FloatToBf16(g[r]);
        }
      }
      if (int8) {
        QuantizeRowsS8(st.gate.data(), n, I, st.act_s8.data(), st.act_scale.data());
        act = st.act_s8.data();
      } else {
        act = st.act_bf16.data();
      }

      // y = act * Wd^T; out[t] += w * y.
      st.y.resize(n * H);
      memory asrc(p.down_pd.src_desc(), st.eng, act);
      memory y(p.down_pd.dst_desc(), st.eng, st.y.data());
      p.down.execute(st.strm,
                     {{DNNL_ARG_SRC, asrc}, {DNNL_ARG_WEIGHTS, x.down}, {DNNL_ARG_DST, y}});
      st.strm.wait();
#pragma omp parallel for schedule(static) if (n * H >= kParallelElements)
      for (int64_t i = 0; i < n; ++i) {  // tokens of one expert are distinct: no races
        const float* yi = st.y.data() + i * H;
        float* o = out + static_cast<int64_t>(tok[i]) * H;
        if (int8) {
          const float c = wt[i] * st.act_scale[i];
          const float* sd = x.down_scale.data();
          for (int64_t h = 0; h < H; ++h) o[h] += c * sd[h] * yi[h];
        } else {
          for (int64_t h = 0; h < H; ++h) o[h] += wt[i] * yi[h];
        }
      }
    }
  } catch (const dnnl::error& e) {
    return DnnlError(e, "run");
  }
  return absl::OkStatus();
}

}  // namespace tandem::bench
