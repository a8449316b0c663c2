#include "bench/machine_limits.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "kernels/cpu/isa.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tandem::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Sinks the kernels' results so the compiler cannot drop them.
volatile float g_sink = 0;

float SumPlain(const float* p, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
  for (; i < n; ++i) acc[0] += p[i];
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

#if defined(__x86_64__)
// Horizontal sum through memory (gcc 12's _mm512_reduce_add_ps warns -Wuninitialized).
__attribute__((target("avx512f"))) float HorizontalSum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float s = 0;
  for (float x : lanes) s += x;
  return s;
}

// Eight independent accumulators (8 cache lines per iteration) over `kStreams` sequential
// streams (equal parts of the slice, read in lockstep): the adds' latency never limits the loads,
// and several streams keep more hardware prefetchers busy, as the MoE kernels' gate, up and
// activation streams do.
constexpr int64_t kStreams = 8;

__attribute__((target("avx512f"))) float SumAvx512(const float* p, int64_t n) {
  __m512 a[8];
  for (auto& x : a) x = _mm512_setzero_ps();
  const int64_t part = n / kStreams / 64 * 64;
  for (int64_t i = 0; i < part; i += 64) {
#pragma GCC unroll 8
    for (int64_t s = 0; s < kStreams; ++s) {
      const float* q = p + s * part + i;
      a[2 * (s % 4)] = _mm512_add_ps(a[2 * (s % 4)], _mm512_load_ps(q));
      a[2 * (s % 4) + 1] = _mm512_add_ps(a[2 * (s % 4) + 1], _mm512_load_ps(q + 16));
      a[2 * (s % 4)] = _mm512_add_ps(a[2 * (s % 4)], _mm512_load_ps(q + 32));
      a[2 * (s % 4) + 1] = _mm512_add_ps(a[2 * (s % 4) + 1], _mm512_load_ps(q + 48));
    }
  }
  for (int j = 1; j < 8; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
  float s = HorizontalSum(a[0]);
  for (int64_t i = kStreams * part; i < n; ++i) s += p[i];
  return s;
}

// 12 independent accumulator chains hide the FMA latency (4 cycles x 2 ports = 8 in flight).
constexpr int64_t kPeakIters = 1 << 22;

__attribute__((target("avx512f"))) double PeakF32Avx512(int64_t iters) {
  __m512 a = _mm512_set1_ps(1.0001f), b = _mm512_set1_ps(0.9999f);
  __m512 c[12];
  for (auto& x : c) x = _mm512_setzero_ps();
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& x : c) x = _mm512_fmadd_ps(a, b, x);
    __asm__ volatile("" : "+v"(a), "+v"(b));  // keep the operands in registers, opaque
  }
  __m512 s = c[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_ps(s, c[j]);
  g_sink = HorizontalSum(s);
  return 12.0 * 16 * 2 * static_cast<double>(iters);
}

__attribute__((target("avx2,fma"))) double PeakF32Avx2(int64_t iters) {
  __m256 a = _mm256_set1_ps(1.0001f), b = _mm256_set1_ps(0.9999f);
  __m256 c[12];
  for (auto& x : c) x = _mm256_setzero_ps();
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& x : c) x = _mm256_fmadd_ps(a, b, x);
    __asm__ volatile("" : "+x"(a), "+x"(b));
  }
  __m256 s = c[0];
  for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, c[j]);
  float out[8];
  _mm256_storeu_ps(out, s);
  g_sink = out[0];
  return 12.0 * 8 * 2 * static_cast<double>(iters);
}

// One vdpbf16ps: 16 lanes x 2 products x (multiply + add) = 64 flops.
__attribute__((target("avx512f,avx512bf16"))) double PeakBf16Avx512(int64_t iters) {
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = a;
  __m512 c[12];
  for (auto& x : c) x = _mm512_setzero_ps();
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& x : c) x = _mm512_dpbf16_ps(x, a, b);
    __asm__ volatile("" : "+v"(a), "+v"(b));
  }
  __m512 s = c[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_ps(s, c[j]);
  g_sink = HorizontalSum(s);
  return 12.0 * 64 * static_cast<double>(iters);
}

// One vpdpbusd: 16 lanes x 4 u8*s8 products x (multiply + add) = 128 ops.
__attribute__((target("avx512f,avx512vnni"))) double PeakVnniAvx512(int64_t iters) {
  __m512i a = _mm512_set1_epi32(0x01010101), b = a;
  __m512i c[12];
  for (auto& x : c) x = _mm512_setzero_si512();
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& x : c) x = _mm512_dpbusd_epi32(x, a, b);
    __asm__ volatile("" : "+v"(a), "+v"(b));
  }
  __m512i s = c[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_epi32(s, c[j]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  g_sink = static_cast<float>(lanes[0]);
  return 12.0 * 128 * static_cast<double>(iters);
}

// AMX: tiles 0-3 accumulate (16 x 16 f32), 4-5 hold A (16 rows x 32 bf16), 6-7 hold B (16 K-pairs
// x 16 columns x 2 bf16); each tdpbf16ps is 16 x 16 x 32 x 2 = 16384 flops.
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

}  // namespace

__attribute__((target("amx-tile"))) void SetUpAmxTiles(const uint8_t* a, const uint8_t* b) {
  static const TileConfig cfg = [] {
    TileConfig c;
    for (int t = 0; t < 8; ++t) {
      c.colsb[t] = 64;
      c.rows[t] = 16;
    }
    return c;
  }();
  // GCC's tile intrinsics are asm statements that declare no memory input: without the barrier
  // the stores that fill the buffers (and, for a local config, the config) may sink past them.
  __asm__ __volatile__("" ::: "memory");
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a + 1024, 64);
  _tile_loadd(6, b, 64);
  _tile_loadd(7, b + 1024, 64);
}

namespace {

__attribute__((target("amx-tile,amx-bf16"))) double PeakAmxBf16(int64_t iters) {
  alignas(64) static thread_local uint16_t src[2 * 16 * 32];
  for (auto& v : src) v = 0x3f80;  // 1.0
  SetUpAmxTiles(reinterpret_cast<const uint8_t*>(src), reinterpret_cast<const uint8_t*>(src));
  for (int64_t i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) static thread_local float out[16 * 16];
  _tile_stored(0, out, 64);
  _tile_release();
  g_sink = out[0];
  return 4.0 * 16384 * static_cast<double>(iters);
}

// As PeakAmxBf16 with int8: A 16 rows x 64 s8, B 16 K-quads x 16 columns x 4 s8; each tdpbssd is
// 16 x 16 x 64 x 2 = 32768 ops.
__attribute__((target("amx-tile,amx-int8"))) double PeakAmxInt8(int64_t iters) {
  alignas(64) static thread_local int8_t src[2 * 16 * 64];
  for (auto& v : src) v = 1;
  SetUpAmxTiles(reinterpret_cast<const uint8_t*>(src), reinterpret_cast<const uint8_t*>(src));
  for (int64_t i = 0; i < iters; ++i) {
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    _tile_dpbssd(2, 5, 6);
    _tile_dpbssd(3, 5, 7);
  }
  alignas(64) static thread_local int32_t out[16 * 16];
  _tile_stored(0, out, 64);
  _tile_release();
  g_sink = static_cast<float>(out[0]);
  return 4.0 * 32768 * static_cast<double>(iters);
}
#endif

// Whether this machine runs `kernel` (the OS state and, for AMX, the permission included).
bool CanRun(const CpuFeatures& f, PeakKernel kernel) {
#if defined(__x86_64__)
  const bool avx512 = f.avx512f && f.os_avx512_state;
  switch (kernel) {
    case PeakKernel::kF32Fma:
      return avx512 || (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
    case PeakKernel::kAvx512Bf16:
      return CanRunAvx512Bf16(f);
    case PeakKernel::kAmxBf16:
      return CanRunAmxBf16(f);
    case PeakKernel::kAvx512Vnni:
      return f.avx512_vnni && avx512;
    case PeakKernel::kAmxInt8:
      return f.amx_tile && f.amx_int8 && f.os_amx_state && f.amx_permitted;
  }
#endif
  (void)f;
  (void)kernel;
  return false;
}

// The flops (ops) of one call of `kernel`'s loop at its standard length, on the calling thread.
double RunPeakKernel(const CpuFeatures& f, PeakKernel kernel) {
#if defined(__x86_64__)
  const int64_t iters = kPeakIters;
  switch (kernel) {
    case PeakKernel::kF32Fma:
      return f.avx512f && f.os_avx512_state ? PeakF32Avx512(iters) : PeakF32Avx2(iters);
    case PeakKernel::kAvx512Bf16:
      return PeakBf16Avx512(iters);
    case PeakKernel::kAmxBf16:
      return PeakAmxBf16(iters / 16);
    case PeakKernel::kAvx512Vnni:
      return PeakVnniAvx512(iters);
    case PeakKernel::kAmxInt8:
      return PeakAmxInt8(iters / 16);
  }
#endif
  (void)f;
  (void)kernel;
  return 0;
}

// `passes` passes of `kernel` on `threads` pinned threads: the best, in TFLOPS (TOPS); 0 where
// the machine cannot run it.
double PeakTflops(int threads, PeakKernel kernel, int passes) {
  const CpuFeatures& f = DetectCpuFeatures();  // also requests the AMX permission
  if (!CanRun(f, kernel)) return 0;
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    double flops = 0;
    const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
    flops += RunPeakKernel(f, kernel);
    const double s = Seconds(t0, Clock::now());
    best = std::max(best, flops / s / 1e12);
  }
  return best;
}

}  // namespace

void PinToCpu(int index) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  const int count = CPU_COUNT(&allowed);
  if (count == 0) return;
  int target = index % count;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (target-- == 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      sched_setaffinity(0, sizeof one, &one);
      return;
    }
  }
}

void PinOpenMpThreads(int threads) {
  // Read the allowed set once, before any thread narrows its own mask.
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  if (cpus.empty()) return;
  omp_set_num_threads(threads);
#pragma omp parallel num_threads(threads)
  {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[omp_get_thread_num() % cpus.size()], &one);
    sched_setaffinity(0, sizeof one, &one);
  }
}

double SamplePeak(int threads, PeakKernel kernel) { return PeakTflops(threads, kernel, 1); }

MachineLimits MeasureMachineLimits(int threads, int64_t read_bytes) {
  ReadProbe probe(threads, read_bytes);
  return MeasureMachineLimits(threads, probe);
}

MachineLimits MeasureMachineLimits(int threads, ReadProbe& probe) {
  MachineLimits m;
  m.threads = threads;
  m.read_bytes = probe.bytes();
  m.read_kernel = probe.kernel();
  probe.PassGbps();  // warm-up
  for (int pass = 1; pass < 6; ++pass) m.read_gbps = std::max(m.read_gbps, probe.PassGbps());

  m.f32_fma_tflops = PeakTflops(threads, PeakKernel::kF32Fma, 3);
  m.avx512_bf16_tflops = PeakTflops(threads, PeakKernel::kAvx512Bf16, 3);
  m.amx_bf16_tflops = PeakTflops(threads, PeakKernel::kAmxBf16, 3);
  m.avx512_vnni_tops = PeakTflops(threads, PeakKernel::kAvx512Vnni, 3);
  m.amx_int8_tops = PeakTflops(threads, PeakKernel::kAmxInt8, 3);
  return m;
}

ReadProbe::ReadProbe(int threads, int64_t bytes) : threads_(threads) {
  const int64_t n = bytes / 4 / (128 * threads) * (128 * threads);
  per_thread_ = n / threads;
  buf_ = static_cast<float*>(std::aligned_alloc(64, n * 4));
  if (buf_ == nullptr) throw std::bad_alloc();
#pragma omp parallel num_threads(threads)
  {
    float* p = buf_ + omp_get_thread_num() * per_thread_;
    for (int64_t i = 0; i < per_thread_; ++i) p[i] = static_cast<float>(i & 7);
  }
#if defined(__x86_64__)
  const CpuFeatures& f = DetectCpuFeatures();
  avx512_ = f.avx512f && f.os_avx512_state;
#endif
}

ReadProbe::~ReadProbe() { std::free(buf_); }

double ReadProbe::PassGbps() {
  float total = 0;
  const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads_) reduction(+ : total)
  {
    const float* p = buf_ + omp_get_thread_num() * per_thread_;
#if defined(__x86_64__)
    total += avx512_ ? SumAvx512(p, per_thread_) : SumPlain(p, per_thread_);
#else
    total += SumPlain(p, per_thread_);
#endif
  }
  const double s = Seconds(t0, Clock::now());
  g_sink = total;
  return static_cast<double>(bytes()) / s / 1e9;
}

MachineLimits BestOf(const MachineLimits& a, const MachineLimits& b) {
  MachineLimits m = a;
  m.read_gbps = std::max(a.read_gbps, b.read_gbps);
  m.f32_fma_tflops = std::max(a.f32_fma_tflops, b.f32_fma_tflops);
  m.avx512_bf16_tflops = std::max(a.avx512_bf16_tflops, b.avx512_bf16_tflops);
  m.amx_bf16_tflops = std::max(a.amx_bf16_tflops, b.amx_bf16_tflops);
  m.avx512_vnni_tops = std::max(a.avx512_vnni_tops, b.avx512_vnni_tops);
  m.amx_int8_tops = std::max(a.amx_int8_tops, b.amx_int8_tops);
  return m;
}

}  // namespace tandem::bench
