// Each thread runs steps of 4 TDPBF16PS on C tiles 0-3 (the 2x2 step of the MoE kernels):
//   peak:  A and B tiles register-resident (loaded once);
//   loads: per step 2 A + 2 B tile loads (1 KB each), A and B cycling through buffers of the
//          given sizes, so that the operands come from L1 (4 KB, 16 KB), L2 (256 KB) or beyond.
// and, to tell what the loads cost, other steps on the same buffers:
//   2x2, A only: the 2 A loads of the 2x2 step, B register-resident (2 loads per 4 TDPs);
//   2x2, one A: one A load per step (1 load per 4 TDPs);
//   1x2, double-buffered: C tiles 0-1, one A and two B tiles per step, loaded into tiles 2-4 and
//          5-7 on alternate steps, so a step's loads never wait for the previous step's TDPs to
//          release their tiles (3 loads per 2 TDPs);
//   loop nest: the MoE kernels' loop on synthetic L2-resident operands (amx_tiles.h's defaults at
//          ~128 tokens per expert): for 4 token-tile pairs, for 8 block pairs: load the 4 C tiles,
//          14 K steps of the 2x2 step (A of the pair: 28 KB, reused over the block pairs; B of the
//          block pair: 28 KB, TILELOADDT1), store the 4 C tiles; and the same without the C loads
//          and stores.
// All tiles hold random bf16 values (zero tiles draw less power and run faster, which would
// overstate the peak). The host's AMX capacity moves by tens of percent within seconds, so the
// steps are interleaved: --rounds rounds, each one pass of every step (rotated order) on all
// pinned threads; ratio = a step's TFLOPS / the register peak's of the same round; median and
// quartiles over the rounds.
//   kernel: the MoE kernels themselves (GateUpRows / DownRows, AMX bf16 and int8) on 32 rows of
//          the Qwen2-57B expert per thread (gate/up: K = 3584; down: K = 2560; tile form of the
//          activations given), all operands in that thread's L2 -- how close the kernels' loop
//          comes to the 2x2 step's bound, without DRAM, L3 or scheduling in the way (best of 3
//          passes, against the median register peak of the rounds).
#include "bench/amx_tile_loads.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "bench/machine_limits.h"
#include "common/bf16.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/moe_kernel.h"
#include "kernels/cpu/moe_pack.h"
#include "nlohmann/json.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tandem::bench {
namespace {

struct Buffer {
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data;
  int64_t bytes = 0;
};

// `bytes` (a multiple of 2 KB) of random bf16 values, written by the calling thread.
Buffer RandomBf16(int64_t bytes, uint32_t seed) {
  Buffer b;
  b.bytes = bytes;
  b.data.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, static_cast<size_t>(bytes))));
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 1);
  auto* v = reinterpret_cast<uint16_t*>(b.data.get());
  for (int64_t i = 0; i < bytes / 2; ++i) v[i] = FloatToBf16(d(rng));
  return b;
}

enum class Step { kPeak, k2x2, k2x2AOnly, k2x2OneA, k1x2Double, kLoopNest, kLoopNestNoC };
const char* StepName(Step s) {
  switch (s) {
    case Step::kPeak:
      return "registers";
    case Step::k2x2:
      return "2x2";
    case Step::k2x2AOnly:
      return "2x2, A only";
    case Step::k2x2OneA:
      return "2x2, one A";
    case Step::kLoopNest:
      return "loop nest";
    case Step::kLoopNestNoC:
      return "loop nest, no C";
    case Step::k1x2Double:
      return "1x2, double-buffered";
  }
  return "";
}

// The loop nest steps' shape (the header comment) and the buffer sizes they read.
constexpr int64_t kNestPairs = 4, kNestBlockPairs = 8, kNestSteps = 14;
constexpr int64_t kNestABytes = kNestPairs * 2 * kNestSteps * 1024;
constexpr int64_t kNestBBytes = kNestBlockPairs * 2 * kNestSteps * 1024;
constexpr int64_t kNestCBytes = kNestPairs * kNestBlockPairs * 4096;

#if defined(__x86_64__)
// Flops of at least `steps` steps of kind `step`; operands from a (a_bytes) and b (b_bytes), each
// cycling (sizes: multiples of 4 KB; the loop nest steps read kNestABytes / kNestBBytes of them),
// and C tiles from c (kNestCBytes, loop nest only).
__attribute__((target("amx-tile,amx-bf16"))) double TileSteps(int64_t steps, Step step,
                                                              const uint8_t* a, int64_t a_bytes,
                                                              const uint8_t* b, int64_t b_bytes,
                                                              uint8_t* c) {
  SetUpAmxTiles(a, b);
  int64_t ao = 0, bo = 0;
  auto advance = [](int64_t* o, int64_t by, int64_t bytes) { *o = *o + by >= bytes ? 0 : *o + by; };
  double tdps = 0;
  if (step == Step::k1x2Double) {
    _tile_loadd(2, a, 64);  // step 0's operands (tiles 2, 3 held zero C tiles of the set-up)
    _tile_loadd(3, b, 64);
    _tile_loadd(4, b + 1024, 64);
    for (int64_t s = 0; s < steps; s += 2) {
      _tile_loadd(5, a + ao + 1024, 64);  // step s + 1's operands, while step s runs
      _tile_loadd(6, b + bo + 2048, 64);
      _tile_loadd(7, b + bo + 3072, 64);
      _tile_dpbf16ps(0, 2, 3);
      _tile_dpbf16ps(1, 2, 4);
      advance(&ao, 2048, a_bytes);
      advance(&bo, 4096, b_bytes);
      _tile_loadd(2, a + ao, 64);  // step s + 2's
      _tile_loadd(3, b + bo, 64);
      _tile_loadd(4, b + bo + 1024, 64);
      _tile_dpbf16ps(0, 5, 6);
      _tile_dpbf16ps(1, 5, 7);
    }
    tdps = 2.0 * static_cast<double>((steps + 1) / 2 * 2);
  } else if (step == Step::kLoopNest || step == Step::kLoopNestNoC) {
    // a: the 4 pairs' A tiles (tile i of pair p, K step s at (28 p + 14 i + s) KB); b: the 8
    // block pairs' B tiles (block jj of pair j, step s at (28 j + 14 jj + s) KB); C tiles of job
    // (p, j) at c + (8 p + j) 4 KB.
    const bool c_traffic = step == Step::kLoopNest;
    int64_t jobs = 0;
    while (jobs * kNestSteps < steps) {
      for (int64_t p = 0; p < kNestPairs; ++p)
        for (int64_t j = 0; j < kNestBlockPairs; ++j) {
          uint8_t* cj = c + (p * kNestBlockPairs + j) * 4096;
          if (c_traffic) {
            _tile_loadd(0, cj, 64);
            _tile_loadd(1, cj + 1024, 64);
            _tile_loadd(2, cj + 2048, 64);
            _tile_loadd(3, cj + 3072, 64);
          }
          const uint8_t* ap = a + p * 2 * kNestSteps * 1024;
          const uint8_t* bj = b + j * 2 * kNestSteps * 1024;
          for (int64_t k = 0; k < kNestSteps; ++k) {
            _tile_loadd(4, ap + k * 1024, 64);
            _tile_stream_loadd(6, bj + k * 1024, 64);
            _tile_loadd(5, ap + (kNestSteps + k) * 1024, 64);
            _tile_stream_loadd(7, bj + (kNestSteps + k) * 1024, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 5, 6);
            _tile_dpbf16ps(2, 4, 7);
            _tile_dpbf16ps(3, 5, 7);
          }
          if (c_traffic) {
            _tile_stored(0, cj, 64);
            _tile_stored(1, cj + 1024, 64);
            _tile_stored(2, cj + 2048, 64);
            _tile_stored(3, cj + 3072, 64);
          }
          ++jobs;
        }
    }
    tdps = 4.0 * static_cast<double>(jobs * kNestSteps);
  } else {
    for (int64_t s = 0; s < steps; ++s) {
      if (step != Step::kPeak) {
        _tile_loadd(4, a + ao, 64);
        if (step == Step::k2x2) _tile_loadd(6, b + bo, 64);
        if (step != Step::k2x2OneA) _tile_loadd(5, a + ao + 1024, 64);
        if (step == Step::k2x2) _tile_loadd(7, b + bo + 1024, 64);
        advance(&ao, 2048, a_bytes);
        advance(&bo, 2048, b_bytes);
      }
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 5, 6);
      _tile_dpbf16ps(2, 4, 7);
      _tile_dpbf16ps(3, 5, 7);
    }
    tdps = 4.0 * static_cast<double>(steps);
  }
  alignas(64) float out[256];
  _tile_stored(0, out, 64);
  _tile_release();
  volatile float sink = out[0];
  (void)sink;
  return tdps * 16 * 16 * 32 * 2;
}
#endif

// One measured case: a step kind on buffers of the given sizes.
struct Case {
  Step step;
  int64_t a_bytes, b_bytes;
};

// Per case: its TFLOPS / the register peak's in the same round, over `rounds` rounds in which
// every case runs one pass of `steps` steps per thread on `threads` pinned threads (rotated
// order). cases[0] must be the peak. Also returns the peak's TFLOPS per round.
struct Interleaved {
  std::vector<std::vector<double>> ratios;  // [case][round]
  std::vector<double> peak_tflops;          // [round]
};
Interleaved RunInterleaved(int threads, int64_t steps, int rounds, const std::vector<Case>& cases) {
  Interleaved r;
  r.ratios.resize(cases.size());
#if defined(__x86_64__)
  int64_t a_max = kNestABytes, b_max = kNestBBytes;
  for (const Case& c : cases) {
    a_max = std::max(a_max, c.a_bytes);
    b_max = std::max(b_max, c.b_bytes);
  }
  // Each pinned thread writes its own operands first (untimed), so they sit in its caches.
  std::vector<Buffer> a(threads), b(threads), c(threads);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    a[t] = RandomBf16(a_max, 3 * t + 1);
    b[t] = RandomBf16(b_max, 3 * t + 2);
    c[t] = RandomBf16(kNestCBytes, 3 * t + 3);
  }
  std::vector<double> tflops(cases.size());
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& k = cases[(i + round) % cases.size()];
      double flops = 0;
      const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
      {
        const int t = omp_get_thread_num();
        flops += TileSteps(steps, k.step, a[t].data.get(), k.a_bytes, b[t].data.get(), k.b_bytes,
                           c[t].data.get());
      }
      const double sec =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      tflops[(i + round) % cases.size()] = flops / sec / 1e12;
    }
    r.peak_tflops.push_back(tflops[0]);
    for (size_t i = 0; i < cases.size(); ++i)
      r.ratios[i].push_back(tflops[0] > 0 ? tflops[i] / tflops[0] : 0);
  }
#else
  (void)threads;
  (void)steps;
  (void)rounds;
#endif
  return r;
}

// The q-quantile (0..1) of v, nearest rank.
double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(std::lround(q * static_cast<double>(v.size() - 1)))];
}

// The kernels on per-thread experts: TFLOPS (bf16) or TOPS (int8) of gate/up and of down, best
// of 3 passes of `calls` calls each, with n tokens.
struct KernelRate {
  double gate_up = 0, down = 0;
};
KernelRate KernelTflops(int threads, ExpertDtype dtype, int64_t n, int64_t calls) {
  // Gate/up: 32 rows of the Qwen2-57B expert (K = hidden 3584); down: 32 rows of its down
  // projection (K = intermediate 2560), as an expert of hidden 32.
  constexpr int64_t kHidden = 3584, kInter = 2560, kRows = 32;
  auto random_matrix = [](int64_t rows, int64_t cols, uint32_t seed) {
    WeightMatrix w;
    w.rows = rows;
    w.cols = cols;
    w.bf16.resize(rows * cols);
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0, 1.0f / std::sqrt(static_cast<float>(cols)));
    for (auto& v : w.bf16) v = FloatToBf16(d(rng));
    return w;
  };
  auto random_floats = [](int64_t count, uint32_t seed) {
    std::vector<float> v(count);
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0, 1);
    for (float& f : v) f = d(rng);
    return v;
  };
  const ExpertKernel kernel{CpuKernel::kAmx, ActivationPrecision::kBf16};
  ExpertFormat format;
  format.dtype = dtype;
  KernelRate best;
  for (int pass = 0; pass < 3; ++pass) {
    double gu_s = 0, dn_s = 0;
#pragma omp parallel num_threads(threads) reduction(max : gu_s, dn_s)
    {
      const uint32_t t = static_cast<uint32_t>(omp_get_thread_num());
      // Each pinned thread builds its own experts and activations (first touch: its caches).
      thread_local std::unique_ptr<PackedExpert> gate_up, down;
      thread_local ActivationBuffer xb, ab;
      thread_local std::vector<float> x, act, out;
      if (pass == 0) {
        gate_up = std::make_unique<PackedExpert>(*PackExpert(
            random_matrix(kRows, kHidden, 6 * t + 1), random_matrix(kRows, kHidden, 6 * t + 2),
            random_matrix(kHidden, kRows, 6 * t + 3), format));
        down = std::make_unique<PackedExpert>(*PackExpert(
            random_matrix(kInter, kRows, 6 * t + 4), random_matrix(kInter, kRows, 6 * t + 5),
            random_matrix(kRows, kInter, 6 * t + 6), format));
        x = random_floats(n * kHidden, 2 * t);
        act = random_floats(n * kInter, 2 * t + 1);
        out.assign(n * std::max(kHidden, kInter), 0.0f);
      }
      const ExpertActivations xa = xb.Prepare(kernel, dtype, x.data(), n, kHidden);
      const ExpertActivations aa = ab.Prepare(kernel, dtype, act.data(), n, kInter);
      GateUpRows(kernel, *gate_up, xa, 0, kRows, out.data());  // warm
      DownRows(kernel, *down, aa, 0, kRows, out.data());
#pragma omp barrier
      auto t0 = std::chrono::steady_clock::now();
      for (int64_t c = 0; c < calls; ++c) GateUpRows(kernel, *gate_up, xa, 0, kRows, out.data());
#pragma omp barrier
      auto t1 = std::chrono::steady_clock::now();
      for (int64_t c = 0; c < calls; ++c) DownRows(kernel, *down, aa, 0, kRows, out.data());
#pragma omp barrier
      auto t2 = std::chrono::steady_clock::now();
      gu_s = std::chrono::duration<double>(t1 - t0).count();
      dn_s = std::chrono::duration<double>(t2 - t1).count();
    }
    const double per_call = 2.0 * n * kRows * calls * threads;  // x K
    best.gate_up = std::max(best.gate_up, 2 * per_call * kHidden / gu_s / 1e12);
    best.down = std::max(best.down, per_call * kInter / dn_s / 1e12);
  }
  return best;
}

struct Options {
  int threads = 0;
  int64_t steps = 500000;
  int rounds = 15;
  bool json = false;
};

int Run(const Options& o) {
  if (!CanRunAmxBf16(DetectCpuFeatures())) {
    std::printf("amx-loads: this machine cannot run AMX (%s); nothing to measure\n",
                DescribeCpu().c_str());
    return 0;
  }
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  PinOpenMpThreads(threads);
  const std::vector<Case> cases = {
      {Step::kPeak, 4096, 4096},
      {Step::k2x2OneA, 4096, 4096},
      {Step::k2x2AOnly, 4096, 4096},
      {Step::k2x2AOnly, 262144, 4096},
      {Step::k2x2, 4096, 4096},
      {Step::k2x2, 16384, 16384},
      {Step::k2x2, 262144, 4096},
      {Step::k2x2, 4096, 262144},
      {Step::k2x2, 262144, 262144},
      {Step::k2x2, 1048576, 1048576},
      {Step::k1x2Double, 4096, 4096},
      {Step::k1x2Double, 262144, 262144},
      {Step::kLoopNest, kNestABytes, kNestBBytes},
      {Step::kLoopNestNoC, kNestABytes, kNestBBytes},
  };
  const Interleaved runs = RunInterleaved(threads, o.steps, o.rounds, cases);
  const double peak = Quantile(runs.peak_tflops, 0.5);
  std::printf(
      "threads %d, %lld steps per pass, %d rounds; register-only peak per round (random bf16 "
      "tiles): min %.2f, median %.2f, max %.2f TFLOPS\n",
      threads, static_cast<long long>(o.steps), o.rounds, Quantile(runs.peak_tflops, 0), peak,
      Quantile(runs.peak_tflops, 1));
  std::printf("%22s %10s %10s %10s %10s %10s\n", "step", "A bytes", "B bytes", "vs peak", "q1",
              "q3");
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 1; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const double median = Quantile(runs.ratios[i], 0.5), q1 = Quantile(runs.ratios[i], 0.25),
                 q3 = Quantile(runs.ratios[i], 0.75);
    std::printf("%22s %10lld %10lld %10.3f %10.3f %10.3f\n", StepName(c.step),
                static_cast<long long>(c.a_bytes), static_cast<long long>(c.b_bytes), median, q1,
                q3);
    rows.push_back({{"step", StepName(c.step)},
                    {"a_bytes", c.a_bytes},
                    {"b_bytes", c.b_bytes},
                    {"peak_ratio", median},
                    {"peak_ratio_q1", q1},
                    {"peak_ratio_q3", q3}});
  }
  // The kernels (peaks: bf16 as above; int8 = 2x, TDPBSSD does twice the MACs in the same time).
  std::printf("kernels, 32 rows of the Qwen2-57B expert per thread, L2-resident:\n");
  std::printf("%6s %6s %12s %10s %12s %10s\n", "dtype", "tokens", "gate/up", "vs peak", "down",
              "vs peak");
  nlohmann::json kernel_rows = nlohmann::json::array();
  for (ExpertDtype dtype : {ExpertDtype::kBf16, ExpertDtype::kInt8}) {
    const double dtype_peak = dtype == ExpertDtype::kInt8 ? 2 * peak : peak;
    for (int64_t n : {32, 64, 128}) {
      const KernelRate r = KernelTflops(threads, dtype, n, std::max<int64_t>(1, o.steps / 1000));
      const char* name = dtype == ExpertDtype::kInt8 ? "int8" : "bf16";
      std::printf("%6s %6lld %12.2f %10.3f %12.2f %10.3f\n", name, static_cast<long long>(n),
                  r.gate_up, r.gate_up / dtype_peak, r.down, r.down / dtype_peak);
      kernel_rows.push_back({{"dtype", name},
                             {"tokens", n},
                             {"gate_up", r.gate_up},
                             {"gate_up_ratio", r.gate_up / dtype_peak},
                             {"down", r.down},
                             {"down_ratio", r.down / dtype_peak}});
    }
  }
  if (o.json) {
    nlohmann::json j = {{"bench", "amx-loads"}, {"threads", threads}, {"steps", o.steps},
                        {"peak_tflops", peak},  {"results", rows},    {"kernels", kernel_rows}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace

void AddAmxLoadsCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "amx-loads", "AMX 2x2 tile step with operand loads from L1/L2 vs the register-only peak");
  cmd->add_option("--threads", o->threads, "pinned threads (default: all allowed CPUs)");
  cmd->add_option("--steps", o->steps, "steps per thread and pass")->check(CLI::PositiveNumber);
  cmd->add_option("--rounds", o->rounds, "rounds of interleaved passes")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "last line: one JSON object");
  cmd->callback([o, exit_code] { *exit_code = Run(*o); });
}

}  // namespace tandem::bench
