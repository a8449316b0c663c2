// The routed experts of one MoE layer run through oneDNN matmul primitives (oneDNN 2.6, Debian's
// libdnnl: CPU engine, OpenMP threading, so it runs on the bench's pinned OpenMP pool), the way a
// user of oneDNN would: `tandem-bench moe`'s baseline for the same work as ExpertShard::Run.
//
// Run(in, out): tokens are grouped by expert (ascending token order) and the active experts run one
// after the other, each with oneDNN parallelizing inside its matmuls:
//   gate = X_e[n x H] * Wg^T,  up = X_e * Wu^T      (Wg, Wu: [I x H])
//   act  = silu(gate) * up                          (plain loop)
//   y    = act[n x I] * Wd^T                        (Wd: [H x I])
//   out[t] += w[t, e] * y[t]                        (plain loop; out is zeroed first)
// Everything in Run is what the bench times: grouping, converting / quantizing the activations,
// gathering, the matmuls and the loops.
//
// Formats (the weights are held in oneDNN's preferred layout: a matmul primitive descriptor with
// format_tag::any chooses it once at Create, and each expert is reordered into it from the same
// random bf16 weights the bench packs for ExpertShard):
//   kBf16: bf16 activations (hidden rounded to bf16 once per token; act rounded to bf16) and bf16
//          weights, f32 dst.
//   kInt8: s8 weights, symmetric per output channel (q = round(w / s), s = max|w[row]| / 127, as
//          moe_format.h's int8); s8 activations quantized symmetric PER TOKEN (s = max|x[t]| /
//          127), for both the hidden and act; the matmuls give the exact integer dots as f32 and
//          the plain loops (silu, weighted accumulation) apply y = sx[t] * sw[r] * dot. Not
//          oneDNN's output scales: in 2.6 they are per tensor or per output column only (no
//          per-token mask), and runtime scales (needed: each expert has its own) make oneDNN drop
//          its brgemm matmul (brg:avx512_core_vnni, blocked weights) for gemm:jit on plain weights,
//          measured ~1.3x slower at 1 token; static scales would need a primitive per expert.
//   (int4: oneDNN 2.6 has no int4 matmul.)
// Primitives are cached per token count n of an expert: Prepare(max_n) creates them for every
// n in [1, max_n] (call it before timing); Run creates any missing one itself (counted in
// primitives_created_in_run()).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bench/moe_workload.h"
#include "coordinator/model_weights.h"

namespace tandem::bench {

enum class OnednnDtype { kBf16, kInt8 };

// The linked oneDNN's version, e.g. "2.6.3".
std::string OnednnVersion();

class OnednnMoe {
 public:
  // `experts` experts of shape `s`; expert(e) returns expert e's bf16 weights (gate, up [I x H],
  // down [H x I]), called once per expert, one at a time (only one bf16 expert is alive at once).
  static absl::StatusOr<std::unique_ptr<OnednnMoe>> Create(
      const MoeShape& s, int64_t experts, OnednnDtype dtype,
      const std::function<MlpWeights(int64_t)>& expert);
  ~OnednnMoe();

  // Creates the primitives for every per-expert token count up to max_n.
  absl::Status Prepare(int64_t max_n);

  // out[in.tokens x H] = sum_j in.weights[t, j] * expert_{in.ids[t, j]}(in.hidden[t]).
  absl::Status Run(const MoeInputs& in, float* out);

  // Bytes of all weights as oneDNN holds them (values, scales).
  int64_t weight_bytes() const;
  // oneDNN's implementation names, e.g. "gate/up: brg:avx512_core_bf16, down: ...", for n.
  std::string ImplInfo(int64_t n);
  int64_t primitives_created_in_run() const;

 private:
  struct State;
  explicit OnednnMoe(std::unique_ptr<State> state);
  std::unique_ptr<State> st_;
};

}  // namespace tandem::bench
