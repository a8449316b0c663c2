// Method of `tandem-bench moe`:
//   1. Pin one OpenMP thread per core (--threads, default: all allowed CPUs) and measure the
//      machine's limits: read bandwidth and peak matrix throughput (machine_limits.h); again after
//      the timed calls. A shared host's read bandwidth and matrix throughput both swing by tens
//      of percent within seconds (the GPU machine's Xeon: the AMX bf16 peak of 16 threads moved
//      between 4.7 and 15 TFLOPS across 50 ms passes within a minute, bench/RESULTS.md), so both
//      are also sampled during the run: after every timed repetition, one pass of the read kernel
//      over 1 GiB and one pass (~10 ms) of the peak kernel of the kernel's family.
//   2. Build one MoE layer's experts from random bf16 weights of the shape's real sizes, packed by
//      ExpertShard::FromWeights in --expert-dtype's format (bf16, int8, int4 with
//      --int4-group-size) for the chosen --cpu-kernel and --schedule; with --onednn on (default;
//      bf16 and int8), the same weights also go to oneDNN (onednn_moe.h) in its own layout.
//      --experts overrides the count; by default all, or as many as fit, our packed copy plus
//      oneDNN's (and at least the bf16 copy that is whole while packing), in 60% of MemAvailable.
//   3. Per token count: --warmup untimed then timed repetitions (at least --reps, and until our
//      timed calls reach --min-time-ms, so short decode calls get many samples), each of
//      --calls-per-rep calls (default 1) back to back before the samples, each call on new
//      random tokens and routing (moe_workload.h: decode cycles through the experts so each call
//      reads its weights from DRAM); each call times ExpertShard::Run and then oneDNN on the
//      same inputs (oneDNN's primitives are created before the warm-up). With one call per
//      repetition every timed call follows the samples' 1 GiB read pass and peak pass; a server
//      runs its layers' calls back to back, as the later calls of a repetition do (the times of
//      the first and of the later calls are also given apart). Median times over the calls;
//      effective bandwidth = stored bytes (ExpertShard::expert_bytes) of the distinct experts
//      touched / time; TFLOPS (TOPS for int formats) = 2 * 3 * hidden * inter * tokens * top_k /
//      time. bandwidth_ratio = effective / the median of the read passes between this token count's
//      repetitions (printed as "read GB/s"); peak_ratio = TFLOPS / the median of the peak passes
//      between the repetitions (printed as "peak"), of the kernel's family (bf16: amx: AMX bf16,
//      avx512: vdpbf16ps; int8 on amx: AMX tdpbssd; int8 / int4 on avx512 (and int4 on amx, which
//      has no AMX int4 kernel): vpdpbusd; reference: f32 FMA); peak_ratio_best_peak ("vs best pk")
//      = TFLOPS / the better of the two full peak measurements (best of 3 passes each) before and
//      after, the stricter figure (a max over passes at other moments). onednn ratio = our median
//      time / oneDNN's (< 1: we are faster). A "memory" line per token count (memory_events.h)
//      gives the page faults inside our timed calls, the system's THP events during the timed
//      repetitions and the share of the process's anonymous memory in huge pages, so that a slow
//      repetition that paid for first-touching a buffer is told from a slow host; the JSON also
//      holds each timed call's time, down phase and page faults ("per_rep").
//   4. --amx-tuning K/C/G[/S[/R[/P[/E[/A[/D[/Y]]]]]]],... (AMX kernels only): every repetition runs
//      ExpertShard::Run once per listed AmxTuning (moe_kernel_impl.h: K steps per K block /
//      token-tile pairs per chunk / weight blocks per group / S: 1 = weight tiles read with
//      TILELOADDT1, the default, 0 = TILELOADD / R: rows per task, default 256 / P: software
//      prefetch, 0 none, 1 the next K block's weights, 2 those and the next token pair's A tiles /
//      E: 1 = epilogues deferred into the next job's K steps / A: 1 = threads claim their next
//      task early and prefetch its first weights / D: 1 = the dynamic schedule's stages run as one
//      dataflow stream, 0 = stage by stage with barriers / Y: 1 = down's y lines written with
//      non-temporal stores),
//      in an order rotated per repetition, on the same inputs, so tunings are compared inside one
//      process and one stretch of the host's noise; each gets its own result row (and
//      "amx_tuning" in the JSON).
// Output: a table, or with --json one JSON object as the last line.
#include "bench/moe_bench.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/machine_limits.h"
#include "bench/memory_events.h"
#include "bench/moe_workload.h"
#include "bench/onednn_moe.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/moe_format.h"
#include "kernels/cpu/moe_kernel_impl.h"
#include "nlohmann/json.hpp"
#include "numa_worker/expert_shard.h"

namespace tandem::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct MoeOptions {
  std::string shape = "qwen2-57b-a14b";
  std::string tokens = "1";
  std::string expert_dtype = "bf16";
  int64_t int4_group_size = 128;
  std::string schedule = "dynamic";
  std::string onednn = "on";
  std::string cpu_kernel = "auto";
  int threads = 0;
  int64_t experts = 0;  // 0: choose
  int warmup = 2;
  int reps = 7;
  double min_time_ms = 1000;  // keep timing until both reps and this much time are done
  int calls_per_rep = 1;      // calls back to back per repetition (between the samples)
  std::string amx_tuning;     // K/C/G[/S[/R[/P[/E[/A[/D[/Y]]]]]]],...; empty: the tuning in effect
  bool json = false;
};

struct TokenResult {
  int64_t tokens = 0;
  std::string amx_tuning;  // K/C/G/S/R/P/E/A/D, or empty when --amx-tuning was not given
  int reps = 0;            // timed calls (repetitions x --calls-per-rep)
  double median_ms = 0;
  // With --calls-per-rep > 1: the median of the first calls of the repetitions and of the others.
  double median_ms_first_call = 0, median_ms_later_calls = 0;
  double min_ms = 0;
  double bytes = 0;  // median over reps of the bytes touched
  double gbps = 0;
  double read_gbps = 0;  // median of the read passes between this token count's repetitions
  double read_gbps_min = 0, read_gbps_max = 0;
  double bandwidth_ratio = 0;
  double tflops = 0;
  // The family's peak sampled after every repetition (SamplePeak): median, min, max; peak_ratio
  // = tflops / the median. peak_ratio_best_peak = tflops / the better of the full measurements
  // before and after the run.
  double peak_sampled = 0, peak_sampled_min = 0, peak_sampled_max = 0;
  double peak_ratio = 0;
  double peak_ratio_best_peak = 0;
  // oneDNN on the same inputs (has_onednn false: not run).
  bool has_onednn = false;
  double onednn_median_ms = 0;
  double onednn_ratio = 0;     // median_ms / onednn_median_ms
  double onednn_rel_diff = 0;  // rms(ours - onednn) / rms(onednn), first warm-up call
  MoeRunPhases phases;         // median over reps of each phase's time
  // Memory events of the timed repetitions (memory_events.h): page faults inside our timed calls
  // (all of them, and the most in one call), system-wide THP events from the first timed
  // repetition to the end of the last, and the process's anonymous memory after them.
  int64_t faults_in_calls = 0, faults_max_per_call = 0;
  MemoryEvents events;
  AnonMemory anon;
  // Per timed call (every call of every timed repetition), in order (JSON only): time, down
  // phase, page faults.
  std::vector<double> rep_ms, rep_down_ms;
  std::vector<int64_t> rep_faults;
};

double RelRmsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : 0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int AllowedCpus() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 1;
  return std::max(1, CPU_COUNT(&allowed));
}

absl::StatusOr<std::vector<int64_t>> ParseTokens(const std::string& list) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(part, &n) || n < 1)
      return absl::InvalidArgumentError("--tokens wants positive integers, e.g. 1,16,256");
    out.push_back(n);
  }
  if (out.empty()) return absl::InvalidArgumentError("--tokens is empty");
  return out;
}

std::string TuningName(const moe_internal::AmxTuning& t) {
  return absl::StrFormat("%d/%d/%d/%d/%d/%d/%d/%d/%d/%d", t.k_steps, t.chunk_pairs, t.group_blocks,
                         t.stream_weights ? 1 : 0, t.task_rows, t.prefetch,
                         t.defer_epilogue ? 1 : 0, t.claim_ahead ? 1 : 0, t.dataflow ? 1 : 0,
                         t.stream_y ? 1 : 0);
}

// --amx-tuning's list; each entry is checked by SetAmxTuning (which leaves the last one in effect;
// the timed loop sets each tuning before its run).
absl::StatusOr<std::vector<moe_internal::AmxTuning>> ParseAmxTunings(const std::string& list) {
  std::vector<moe_internal::AmxTuning> out;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    const std::vector<std::string> f = absl::StrSplit(part, '/');
    moe_internal::AmxTuning t;
    // S, R, P, E, A, D, Y left out: the defaults.
    int64_t v[10] = {0,
                     0,
                     0,
                     t.stream_weights ? 1 : 0,
                     t.task_rows,
                     t.prefetch,
                     t.defer_epilogue ? 1 : 0,
                     t.claim_ahead ? 1 : 0,
                     t.dataflow ? 1 : 0,
                     t.stream_y ? 1 : 0};
    bool ok = f.size() >= 3 && f.size() <= 10;
    for (size_t i = 0; ok && i < f.size(); ++i) ok = absl::SimpleAtoi(f[i], &v[i]);
    t.k_steps = v[0];
    t.chunk_pairs = v[1];
    t.group_blocks = static_cast<int>(v[2]);
    t.stream_weights = v[3] == 1;
    t.task_rows = v[4];
    t.prefetch = static_cast<int>(v[5]);
    t.defer_epilogue = v[6] == 1;
    t.claim_ahead = v[7] == 1;
    t.dataflow = v[8] == 1;
    t.stream_y = v[9] == 1;
    auto flag = [](int64_t x) { return x == 0 || x == 1; };
    if (!ok || !flag(v[3]) || !flag(v[6]) || !flag(v[7]) || !flag(v[8]) || !flag(v[9]) ||
        !moe_internal::SetAmxTuning(t))
      return absl::InvalidArgumentError(absl::StrFormat(
          "--amx-tuning entry '%s' is not K/C/G[/S[/R[/P[/E[/A[/D[/Y]]]]]]] with K in 1..4096, "
          "C >= 1, G even in 2..16, S 0|1, R a multiple of 16, P 0..2, E 0|1, A 0|1, D 0|1, "
          "Y 0|1",
          std::string(part)));
    out.push_back(t);
  }
  if (out.empty()) return absl::InvalidArgumentError("--amx-tuning is empty");
  return out;
}

void PrintLimits(FILE* log, const char* label, const MachineLimits& lim) {
  std::fprintf(
      log,
      "%s: read %.2f GB/s (%s, %.2f GiB); peak TFLOPS: f32 FMA %.3f, AVX-512 bf16 "
      "%.3f, AMX bf16 %s; peak TOPS: AVX-512 VNNI %.3f, AMX int8 %s\n",
      label, lim.read_gbps, lim.read_kernel.c_str(), lim.read_bytes / double(1 << 30),
      lim.f32_fma_tflops, lim.avx512_bf16_tflops,
      lim.amx_bf16_tflops > 0 ? absl::StrFormat("%.3f", lim.amx_bf16_tflops).c_str()
                              : "n/a (no AMX)",
      lim.avx512_vnni_tops,
      lim.amx_int8_tops > 0 ? absl::StrFormat("%.3f", lim.amx_int8_tops).c_str() : "n/a (no AMX)");
}

nlohmann::json LimitsJson(const MachineLimits& lim) {
  return {{"read_gbps", lim.read_gbps},
          {"read_kernel", lim.read_kernel},
          {"read_bytes", lim.read_bytes},
          {"f32_fma_tflops", lim.f32_fma_tflops},
          {"avx512_bf16_tflops", lim.avx512_bf16_tflops},
          {"amx_bf16_tflops", lim.amx_bf16_tflops},
          {"avx512_vnni_tops", lim.avx512_vnni_tops},
          {"amx_int8_tops", lim.amx_int8_tops}};
}

// The peak the kernel's family is measured against: its kernel, name and value in `lim` (method
// step 3).
struct PeakChoice {
  PeakKernel kernel;
  std::string name;
  double value;
};
PeakChoice PeakFor(const MachineLimits& lim, const ExpertFormat& format, CpuKernel kernel) {
  if (!format.quantized()) {
    if (kernel == CpuKernel::kAmx && lim.amx_bf16_tflops > 0)
      return {PeakKernel::kAmxBf16, "amx_bf16", lim.amx_bf16_tflops};
    if (kernel != CpuKernel::kReference && lim.avx512_bf16_tflops > 0)
      return {PeakKernel::kAvx512Bf16, "avx512_bf16", lim.avx512_bf16_tflops};
  } else if (format.dtype == ExpertDtype::kInt8 && kernel == CpuKernel::kAmx &&
             lim.amx_int8_tops > 0) {
    return {PeakKernel::kAmxInt8, "amx_int8", lim.amx_int8_tops};
  } else if (kernel != CpuKernel::kReference && lim.avx512_vnni_tops > 0) {
    // int4 on amx too: it has no AMX int4 kernel
    return {PeakKernel::kAvx512Vnni, "avx512_vnni", lim.avx512_vnni_tops};
  }
  return {PeakKernel::kF32Fma, "f32_fma", lim.f32_fma_tflops};
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "tandem-bench moe: %s\n", std::string(s.message()).c_str());
  return 1;
}

int RunMoe(const MoeOptions& o) {
  auto format = ParseExpertFormat(o.expert_dtype, o.int4_group_size);
  if (!format.ok()) return Fail(format.status());
  auto schedule = ParseMoeSchedule(o.schedule);
  if (!schedule.ok()) return Fail(schedule.status());
  if (o.onednn != "on" && o.onednn != "off")
    return Fail(absl::InvalidArgumentError("--onednn must be on or off"));
  // oneDNN 2.6 has matmuls for bf16 and int8 weights, none for int4.
  const bool onednn_on = o.onednn == "on" && format->dtype != ExpertDtype::kInt4;
  const OnednnDtype onednn_dtype =
      format->dtype == ExpertDtype::kInt8 ? OnednnDtype::kInt8 : OnednnDtype::kBf16;
  std::string onednn_status = "measured";
  if (o.onednn == "off") {
    onednn_status = "off (--onednn off)";
  } else if (!onednn_on) {
    onednn_status = "n/a for int4 (oneDNN 2.6 has no int4 matmul)";
  }
  if (o.warmup < 0 || o.reps < 5) return Fail(absl::InvalidArgumentError("--reps must be >= 5"));
  if (o.calls_per_rep < 1 || o.calls_per_rep > 1000)
    return Fail(absl::InvalidArgumentError("--calls-per-rep must be in [1, 1000]"));
  auto shape = FindMoeShape(o.shape);
  if (!shape.ok()) return Fail(shape.status());
  auto tokens = ParseTokens(o.tokens);
  if (!tokens.ok()) return Fail(tokens.status());
  auto requested = ParseCpuKernel(o.cpu_kernel);
  if (!requested.ok()) return Fail(requested.status());
  auto kernel = ResolveCpuKernel(*requested);  // also requests the AMX permission
  if (!kernel.ok()) return Fail(kernel.status());
  std::vector<moe_internal::AmxTuning> tunings;  // empty: run once with the tuning in effect
  if (!o.amx_tuning.empty()) {
    auto parsed = ParseAmxTunings(o.amx_tuning);
    if (!parsed.ok()) return Fail(parsed.status());
    if (*kernel != CpuKernel::kAmx)
      return Fail(absl::InvalidArgumentError("--amx-tuning needs the amx kernel"));
    tunings = std::move(*parsed);
  }
  const size_t variants = std::max<size_t>(1, tunings.size());
  // Bytes per weight of our copy and of oneDNN's (scales, ~1%, ignored).
  const double ours_per_weight = PackedBytesPerWeight(*format);
  const double onednn_per_weight = !onednn_on                           ? 0.0
                                   : onednn_dtype == OnednnDtype::kBf16 ? 2.0
                                                                        : 1.0;
  auto experts =
      ChooseExpertCount(*shape, HeldExpertBytes(*shape, ours_per_weight, onednn_per_weight),
                        o.experts > 0 ? std::optional<int64_t>(o.experts) : std::nullopt);
  if (!experts.ok()) return Fail(experts.status());
  const int threads = o.threads > 0 ? o.threads : AllowedCpus();
  const MoeShape& s = *shape;
  FILE* log = o.json ? stderr : stdout;  // with --json, stdout carries only the JSON line

  std::fprintf(log, "cpu: %s\n", DescribeCpu().c_str());
  std::fprintf(log,
               "kernel: %s (requested %s), expert format: %s, schedule: %s, threads: %d (pinned, "
               "one per CPU)\n",
               std::string(CpuKernelName(*kernel)).c_str(), o.cpu_kernel.c_str(),
               ExpertFormatName(*format).c_str(), std::string(MoeScheduleName(*schedule)).c_str(),
               threads);
  const bool all_experts = *experts == s.experts;
  std::fprintf(log,
               "shape: %s, hidden %lld, expert intermediate %lld, top-k %lld, experts held: %lld "
               "of %lld%s (%.2f GB of bf16 weights)\n",
               s.name.c_str(), (long long)s.hidden, (long long)s.intermediate, (long long)s.top_k,
               (long long)*experts, (long long)s.experts,
               all_experts ? ""
                           : (o.experts > 0 ? " (--experts)"
                              : onednn_on   ? " (ours + oneDNN's DO NOT FIT in 60% of "
                                              "MemAvailable: reduced)"
                                            : " (ALL DO NOT FIT in 60% of "
                                              "MemAvailable: reduced)"),
               static_cast<double>(*experts) * ExpertBytes(s) / 1e9);

  PinOpenMpThreads(threads);
  std::fprintf(log, "measuring machine limits...\n");
  // One 1 GiB read buffer for the limits before and after and for the samples between the reps.
  ReadProbe read_probe(threads, int64_t{1} << 30);
  const MachineLimits lim_before = MeasureMachineLimits(threads, read_probe);
  PrintLimits(log, "limits", lim_before);
  const PeakChoice peak_family = PeakFor(lim_before, *format, *kernel);

  std::fprintf(log, "generating and packing weights...\n");
  const auto g0 = Clock::now();
  ModelConfig config;
  config.hidden_size = s.hidden;
  config.num_layers = 1;
  config.layer_is_moe = {true};
  config.moe.num_experts = *experts;
  config.moe.top_k = s.top_k;
  config.moe.expert_intermediate_size = s.intermediate;
  std::vector<std::vector<MlpWeights>> weights(1);
  weights[0] = RandomExperts(s, *experts, /*seed=*/42);
  auto shard = ExpertShard::FromWeights(config, std::move(weights),
                                        ExpertShardOptions{*kernel, *format, *schedule});
  if (!shard.ok()) return Fail(shard.status());
  std::fprintf(log, "ready in %.1f s (%.2f GB packed)\n",
               std::chrono::duration<double>(Clock::now() - g0).count(),
               (*shard)->weight_bytes() / 1e9);

  // oneDNN's copy, from the same random weights regenerated one expert at a time (ours were freed
  // by packing).
  std::unique_ptr<OnednnMoe> onednn;
  if (onednn_on) {
    std::fprintf(log, "onednn: reordering weights...\n");
    const auto d0 = Clock::now();
    auto created = OnednnMoe::Create(s, *experts, onednn_dtype,
                                     [&](int64_t e) { return RandomExpert(s, e, /*seed=*/42); });
    if (!created.ok()) return Fail(created.status());
    onednn = std::move(*created);
    std::fprintf(log, "onednn: ready in %.1f s (%.2f GB), %s\n",
                 std::chrono::duration<double>(Clock::now() - d0).count(),
                 onednn->weight_bytes() / 1e9, onednn->ImplInfo(1).c_str());
  }

  RoutingGenerator routing(*experts, s.top_k, s.hidden, /*seed=*/7);
  std::vector<TokenResult> results;
  for (int64_t n : *tokens) {
    std::vector<float> out(n * s.hidden), out_onednn;
    std::vector<double> bytes, onednn_ms, read_gbps, peak_samples;
    // Per variant (tuning): times and MoeRunPhases's fields, in order.
    std::vector<std::vector<double>> ms(variants);
    // The same times split by the call's place in its repetition (--calls-per-rep > 1): the first
    // follows the samples (a 1 GiB read pass, a peak pass), the later ones a call like themselves.
    std::vector<std::vector<double>> ms_first_call(variants), ms_later_calls(variants);
    std::vector<std::array<std::vector<double>, 5>> phase_ms(variants);
    std::vector<std::vector<int64_t>> rep_faults(variants);
    double timed_ms = 0, rel_diff = 0;
    int64_t faults_in_calls = 0, faults_max_per_call = 0;
    MemoryEvents events_begin;
    if (onednn) {
      out_onednn.resize(n * s.hidden);
      // Primitives for every per-expert token count this n can give (untimed).
      const absl::Status st = onednn->Prepare(n);
      if (!st.ok()) return Fail(st);
    }
    for (int rep = 0; rep < o.warmup + o.reps || timed_ms < o.min_time_ms; ++rep) {
      if (rep == o.warmup) events_begin = ReadMemoryEvents();
      const bool timed = rep >= o.warmup;
      // --calls-per-rep calls back to back (each on new inputs), then the samples.
      for (int call = 0; call < o.calls_per_rep; ++call) {
        const MoeInputs in = routing.Next(n);
        MoeBatch b;
        b.layer = 0;
        b.num_tokens = n;
        b.top_k = s.top_k;
        b.hidden = in.hidden.data();
        b.expert_ids = in.ids.data();
        b.weights = in.weights.data();
        std::vector<MoeRunPhases> phases(variants);
        std::vector<double> t(variants);
        std::vector<int64_t> faults(variants);
        for (size_t i = 0; i < variants; ++i) {
          const size_t v = (rep + i) % variants;  // rotated, so no tuning always runs first
          if (!tunings.empty()) moe_internal::SetAmxTuning(tunings[v]);
          const int64_t faults0 = MinorPageFaults();
          const auto t0 = Clock::now();
          const absl::Status st = (*shard)->Run(b, out.data(), &phases[v]);
          t[v] = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          faults[v] = MinorPageFaults() - faults0;
          if (!st.ok()) return Fail(st);
        }
        double t_onednn = 0;
        if (onednn) {
          const auto d0 = Clock::now();
          const absl::Status sd = onednn->Run(in, out_onednn.data());
          t_onednn = std::chrono::duration<double, std::milli>(Clock::now() - d0).count();
          if (!sd.ok()) return Fail(sd);
          if (rep == 0 && call == 0) rel_diff = RelRmsDiff(out, out_onednn);
        }
        if (!timed) continue;
        for (size_t v = 0; v < variants; ++v) {
          faults_in_calls += faults[v];
          faults_max_per_call = std::max(faults_max_per_call, faults[v]);
          rep_faults[v].push_back(faults[v]);
        }
        timed_ms += t[0];
        for (size_t v = 0; v < variants; ++v) {
          ms[v].push_back(t[v]);
          (call == 0 ? ms_first_call[v] : ms_later_calls[v]).push_back(t[v]);
          const MoeRunPhases& p = phases[v];
          const double split[5] = {p.gather_ms, p.gate_up_ms, p.act_forms_ms, p.down_ms,
                                   p.combine_ms};
          for (int i = 0; i < 5; ++i) phase_ms[v][i].push_back(split[i]);
        }
        if (onednn) onednn_ms.push_back(t_onednn);
        double touched = 0;
        for (int32_t e : in.distinct_ids)
          touched += static_cast<double>((*shard)->expert_bytes(0, e));
        bytes.push_back(touched);
      }
      if (!timed) continue;
      read_gbps.push_back(read_probe.PassGbps());  // the bandwidth this rep had about it
      peak_samples.push_back(SamplePeak(threads, peak_family.kernel));  // and the peak
    }
    const MemoryEvents events = ReadMemoryEvents() - events_begin;
    const AnonMemory anon = ReadAnonMemory();
    const double flops = 2.0 * 3 * s.hidden * s.intermediate * n * s.top_k;
    const double read_median = Median(read_gbps);
    const auto [read_min, read_max] = std::minmax_element(read_gbps.begin(), read_gbps.end());
    const double peak_median = Median(peak_samples);
    const auto [peak_min, peak_max] = std::minmax_element(peak_samples.begin(), peak_samples.end());
    for (size_t v = 0; v < variants; ++v) {
      TokenResult r;
      r.tokens = n;
      if (!tunings.empty()) r.amx_tuning = TuningName(tunings[v]);
      r.reps = static_cast<int>(ms[v].size());
      r.median_ms = Median(ms[v]);
      if (o.calls_per_rep > 1) {
        r.median_ms_first_call = Median(ms_first_call[v]);
        r.median_ms_later_calls = Median(ms_later_calls[v]);
      }
      r.min_ms = *std::min_element(ms[v].begin(), ms[v].end());
      r.bytes = Median(bytes);
      const auto& pm = phase_ms[v];
      r.phases = {Median(pm[0]), Median(pm[1]), Median(pm[2]), Median(pm[3]), Median(pm[4])};
      r.gbps = r.bytes / (r.median_ms * 1e-3) / 1e9;
      r.read_gbps = read_median;
      r.read_gbps_min = *read_min;
      r.read_gbps_max = *read_max;
      r.peak_sampled = peak_median;
      r.peak_sampled_min = *peak_min;
      r.peak_sampled_max = *peak_max;
      r.tflops = flops / (r.median_ms * 1e-3) / 1e12;
      r.rep_ms = ms[v];
      r.rep_down_ms = phase_ms[v][3];
      r.rep_faults = rep_faults[v];
      r.faults_in_calls = faults_in_calls;
      r.faults_max_per_call = faults_max_per_call;
      r.events = events;
      r.anon = anon;
      if (onednn) {
        r.has_onednn = true;
        r.onednn_median_ms = Median(onednn_ms);
        r.onednn_ratio = r.onednn_median_ms > 0 ? r.median_ms / r.onednn_median_ms : 0;
        r.onednn_rel_diff = rel_diff;
      }
      results.push_back(r);
    }
  }

  std::fprintf(log, "measuring machine limits again...\n");
  const MachineLimits lim_after = MeasureMachineLimits(threads, read_probe);
  PrintLimits(log, "limits after", lim_after);
  const MachineLimits lim = BestOf(lim_before, lim_after);
  const PeakChoice best_peak = PeakFor(lim, *format, *kernel);
  const std::string& peak_kind = best_peak.name;
  const double peak = best_peak.value;
  for (TokenResult& r : results) {
    r.bandwidth_ratio = r.read_gbps > 0 ? r.gbps / r.read_gbps : 0;
    r.peak_ratio = r.peak_sampled > 0 ? r.tflops / r.peak_sampled : 0;
    r.peak_ratio_best_peak = peak > 0 ? r.tflops / peak : 0;
  }

  const char* ops = format->quantized() ? "TOPS" : "TFLOPS";
  const bool tuned = !tunings.empty();
  std::fprintf(log, "\n%8s %s%6s %11s %11s %11s %10s %10s %9s %9s %8s %10s %10s %11s %11s\n",
               "tokens", tuned ? "  amx tuning " : "", "reps", "median ms", "min ms", "GB touched",
               "eff GB/s", "read GB/s", "bw ratio", ops, "peak", "peak ratio", "vs best pk",
               "onednn ms", "ours/onednn");
  for (const TokenResult& r : results) {
    std::fprintf(log,
                 "%8lld %s%6d %11.3f %11.3f %11.3f %10.2f %10.2f %9.3f %9.4f %8.2f %10.3f %10.3f",
                 (long long)r.tokens, tuned ? absl::StrFormat("%12s ", r.amx_tuning).c_str() : "",
                 r.reps, r.median_ms, r.min_ms, r.bytes / 1e9, r.gbps, r.read_gbps,
                 r.bandwidth_ratio, r.tflops, r.peak_sampled, r.peak_ratio, r.peak_ratio_best_peak);
    if (r.has_onednn) {
      std::fprintf(log, " %11.3f %11.3f\n", r.onednn_median_ms, r.onednn_ratio);
    } else {
      std::fprintf(log, " %11s %11s\n", "n/a", "n/a");
    }
  }
  std::fprintf(
      log,
      "(median of >= %d reps x %d calls and >= %.0f ms after %d warm-up; bw ratio vs read GB/s: "
      "the "
      "median of read passes between the reps (%.2f before the run, %.2f after); peak ratio "
      "vs peak: the median of %s peak passes between the reps; vs best pk: vs %.3f %s, the "
      "better of the full measurements before and after)\n",
      o.reps, o.calls_per_rep, o.min_time_ms, o.warmup, lim_before.read_gbps, lim_after.read_gbps,
      peak_kind.c_str(), peak, ops);
  for (const TokenResult& r : results)
    std::fprintf(log, "%lld tokens%s%s: peak passes between the reps %.3f-%.3f %s\n",
                 (long long)r.tokens, tuned ? ", amx tuning " : "", r.amx_tuning.c_str(),
                 r.peak_sampled_min, r.peak_sampled_max, ops);
  if (o.calls_per_rep > 1) {
    for (const TokenResult& r : results)
      std::fprintf(log,
                   "%lld tokens%s%s: %d calls per rep, median ms of the first calls %.3f (after "
                   "the samples), of the later ones %.3f (after a call)\n",
                   (long long)r.tokens, tuned ? ", amx tuning " : "", r.amx_tuning.c_str(),
                   o.calls_per_rep, r.median_ms_first_call, r.median_ms_later_calls);
  }
  for (const TokenResult& r : results) {
    const MoeRunPhases& p = r.phases;
    std::fprintf(log,
                 "%lld tokens%s%s, phases (median ms): gather %.3f, gate/up %.3f, act forms %.3f, "
                 "down %.3f, combine %.3f\n",
                 (long long)r.tokens, tuned ? ", amx tuning " : "", r.amx_tuning.c_str(),
                 p.gather_ms, p.gate_up_ms, p.act_forms_ms, p.down_ms, p.combine_ms);
  }
  for (const TokenResult& r : results) {
    const MemoryEvents& e = r.events;
    std::fprintf(
        log,
        "%lld tokens%s%s, memory: page faults in the timed calls %lld (at most %lld in "
        "one); THP events in those reps (system-wide): %lld faults given a huge page, %lld "
        "denied one, %lld collapses; anonymous memory %.2f GB, %.0f%% in huge pages\n",
        (long long)r.tokens, tuned ? ", amx tuning " : "", r.amx_tuning.c_str(),
        (long long)r.faults_in_calls, (long long)r.faults_max_per_call,
        (long long)e.thp_fault_alloc, (long long)e.thp_fault_fallback,
        (long long)e.thp_collapse_alloc, r.anon.anonymous / 1e9,
        r.anon.anonymous > 0 ? 100.0 * r.anon.in_huge_pages / r.anon.anonymous : 0.0);
  }
  std::string onednn_impl;
  if (onednn) {
    onednn_impl = onednn->ImplInfo(1);
    std::fprintf(log,
                 "onednn: oneDNN %s matmul, %s weights, serial over experts (%s); ours/onednn "
                 "< 1: we are faster\n",
                 OnednnVersion().c_str(),
                 onednn_dtype == OnednnDtype::kInt8 ? "s8 (per-token s8 activations)" : "bf16",
                 onednn_impl.c_str());
    for (const TokenResult& r : results) {
      std::fprintf(log, "onednn: %lld tokens: output rel rms diff vs ours %.2e\n",
                   (long long)r.tokens, r.onednn_rel_diff);
    }
    if (onednn->primitives_created_in_run() > 0) {
      std::fprintf(log, "onednn: WARNING %lld primitives were created inside timed calls\n",
                   (long long)onednn->primitives_created_in_run());
    }
  } else {
    std::fprintf(log, "onednn: %s\n", onednn_status.c_str());
  }

  if (o.json) {
    nlohmann::json j;
    j["bench"] = "moe";
    j["shape"] = s.name;
    j["hidden"] = s.hidden;
    j["intermediate"] = s.intermediate;
    j["top_k"] = s.top_k;
    j["experts"] = *experts;
    j["experts_real"] = s.experts;
    j["expert_dtype"] = o.expert_dtype;
    j["expert_format"] = ExpertFormatName(*format);
    j["schedule"] = std::string(MoeScheduleName(*schedule));
    j["cpu_kernel"] = std::string(CpuKernelName(*kernel));
    j["threads"] = threads;
    j["min_reps"] = o.reps;
    j["min_time_ms"] = o.min_time_ms;
    j["warmup"] = o.warmup;
    j["calls_per_rep"] = o.calls_per_rep;
    j["limits"] = LimitsJson(lim);  // the better of the two measurements (peak_ratio_best_peak)
    j["limits"]["peak_kind"] = peak_kind;
    j["limits"]["peak_tflops"] = peak;
    j["limits_before"] = LimitsJson(lim_before);
    j["limits_after"] = LimitsJson(lim_after);
    j["results"] = nlohmann::json::array();
    for (const TokenResult& r : results) {
      j["results"].push_back({{"tokens", r.tokens},
                              {"reps", r.reps},
                              {"median_ms", r.median_ms},
                              {"min_ms", r.min_ms},
                              {"bytes_touched", r.bytes},
                              {"effective_gbps", r.gbps},
                              {"read_gbps", r.read_gbps},
                              {"read_gbps_min", r.read_gbps_min},
                              {"read_gbps_max", r.read_gbps_max},
                              {"bandwidth_ratio", r.bandwidth_ratio},
                              {"tflops", r.tflops},
                              {"peak_sampled", r.peak_sampled},
                              {"peak_sampled_min", r.peak_sampled_min},
                              {"peak_sampled_max", r.peak_sampled_max},
                              {"peak_ratio", r.peak_ratio},
                              {"peak_ratio_best_peak", r.peak_ratio_best_peak}});
      nlohmann::json& jr = j["results"].back();
      if (tuned) jr["amx_tuning"] = r.amx_tuning;
      if (o.calls_per_rep > 1) {
        jr["median_ms_first_call"] = r.median_ms_first_call;
        jr["median_ms_later_calls"] = r.median_ms_later_calls;
      }
      jr["phases_ms"] = {{"gather", r.phases.gather_ms},
                         {"gate_up", r.phases.gate_up_ms},
                         {"act_forms", r.phases.act_forms_ms},
                         {"down", r.phases.down_ms},
                         {"combine", r.phases.combine_ms}};
      jr["memory"] = {{"page_faults_in_calls", r.faults_in_calls},
                      {"page_faults_max_per_call", r.faults_max_per_call},
                      {"thp_fault_alloc", r.events.thp_fault_alloc},
                      {"thp_fault_fallback", r.events.thp_fault_fallback},
                      {"thp_collapse_alloc", r.events.thp_collapse_alloc},
                      {"anonymous_bytes", r.anon.anonymous},
                      {"anonymous_huge_bytes", r.anon.in_huge_pages}};
      jr["per_rep"] = {{"ms", r.rep_ms}, {"down_ms", r.rep_down_ms}, {"page_faults", r.rep_faults}};
      jr["onednn_median_ms"] = r.has_onednn ? nlohmann::json(r.onednn_median_ms) : nullptr;
      jr["onednn_ratio"] = r.has_onednn ? nlohmann::json(r.onednn_ratio) : nullptr;
      jr["onednn_rel_rms_diff"] = r.has_onednn ? nlohmann::json(r.onednn_rel_diff) : nullptr;
    }
    j["peak_kind"] = peak_kind;
    if (results.size() == 1) {
      j["bandwidth_ratio"] = results[0].bandwidth_ratio;
      j["peak_ratio"] = results[0].peak_ratio;
      j["peak_ratio_best_peak"] = results[0].peak_ratio_best_peak;
      j["onednn_ratio"] = results[0].has_onednn ? nlohmann::json(results[0].onednn_ratio) : nullptr;
    }
    j["onednn"] = {{"status", onednn_status}};
    if (onednn) {
      j["onednn"]["version"] = OnednnVersion();
      j["onednn"]["dtype"] = onednn_dtype == OnednnDtype::kInt8 ? "int8" : "bf16";
      j["onednn"]["impl"] = onednn_impl;
      j["onednn"]["weight_bytes"] = onednn->weight_bytes();
      j["onednn"]["primitives_created_in_run"] = onednn->primitives_created_in_run();
    }
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace

void AddMoeCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<MoeOptions>();
  CLI::App* cmd = app.add_subcommand("moe", "routed-MoE operator vs the machine's limits");
  cmd->add_option("--shape", o->shape, "expert shape: " + MoeShapeNames())->required();
  cmd->add_option("--tokens", o->tokens, "token counts, comma-separated (e.g. 1,16,256)");
  cmd->add_option("--expert-dtype", o->expert_dtype, "bf16|int8|int4 (kernels/cpu/moe_format.h)");
  cmd->add_option("--int4-group-size", o->int4_group_size, "int4 group size: 32|128 (default 128)");
  cmd->add_option("--schedule", o->schedule, "dynamic|static: how Run hands out its tasks");
  cmd->add_option("--onednn", o->onednn,
                  "on|off: also time oneDNN matmuls on the same inputs (default on; bf16, int8)");
  cmd->add_option("--cpu-kernel", o->cpu_kernel, "auto|reference|avx512|amx");
  cmd->add_option("--threads", o->threads, "pinned threads (default: all allowed CPUs)");
  cmd->add_option("--experts", o->experts,
                  "experts to hold (default: all, or as many as fit in 60% of MemAvailable)");
  cmd->add_option("--warmup", o->warmup, "untimed calls per token count");
  cmd->add_option("--reps", o->reps, "timed calls per token count (>= 5; median reported)");
  cmd->add_option("--min-time-ms", o->min_time_ms,
                  "keep timing each token count until this many ms are timed (default 1000)");
  cmd->add_option("--calls-per-rep", o->calls_per_rep,
                  "calls back to back per repetition, each timed, the samples after the last "
                  "(default 1)");
  cmd->add_option(
      "--amx-tuning", o->amx_tuning,
      "K/C/G[/S[/R[/P[/E[/A[/D[/Y]]]]]]],...: AMX tunings run interleaved on the same inputs, one "
      "result each (K steps per K block, chunk pairs, group blocks, 1 = TILELOADDT1 weights, "
      "rows per task, prefetch 0|1|2, 1 = deferred epilogues, 1 = claim ahead, 1 = dataflow, "
      "1 = non-temporal y stores)");
  cmd->add_flag("--json", o->json, "last line: one JSON object");
  cmd->callback([o, exit_code] { *exit_code = RunMoe(*o); });
}

}  // namespace tandem::bench
