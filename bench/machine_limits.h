// The machine's own limits, measured in the same run as a benchmark so that its figures can be
// given as fractions of what this machine (and its current load) can do:
//   * read bandwidth: a STREAM-style multi-threaded read (sum) over a buffer of >= 1 GiB, one
//     pinned thread per core, each summing its own first-touched slice (AVX-512 when available,
//     as 8 concurrent sequential streams: one stream per thread reads ~5% below what the MoE
//     operator itself reaches on the dev VM);
//   * peak matrix throughput: register-resident kernels that never touch memory, one per ISA the
//     machine runs: f32 FMA, AVX-512 BF16 vdpbf16ps, AMX tdpbf16ps, and for the int8 / int4
//     formats AVX-512 VNNI vpdpbusd and AMX tdpbssd (TOPS: multiply and add count as 2), per
//     core x threads.
// Each figure is the best of several passes (as STREAM reports), so noise only lowers it.
#pragma once

#include <cstdint>
#include <string>

namespace tandem::bench {

struct MachineLimits {
  int threads = 0;
  double read_gbps = 0;     // GB/s (1e9 bytes per second)
  std::string read_kernel;  // "avx512" or "plain"
  int64_t read_bytes = 0;   // size of the buffer read
  // Peak TFLOPS per kernel family; 0 where this machine cannot run it.
  double f32_fma_tflops = 0;      // AVX-512 (else AVX2) f32 FMA chain
  double avx512_bf16_tflops = 0;  // vdpbf16ps chain
  double amx_bf16_tflops = 0;     // AMX tdpbf16ps loop
  // Peak integer TOPS (int8 multiply-adds count 2 ops); 0 where this machine cannot run it.
  double avx512_vnni_tops = 0;  // vpdpbusd chain
  double amx_int8_tops = 0;     // AMX tdpbssd loop
};

// Pins the calling thread to the `index`-th CPU of this process's allowed set (modulo its size).
void PinToCpu(int index);

// Pins each thread of OpenMP's pool (of `threads` threads) to its own CPU, thread i to the i-th
// allowed CPU; later parallel regions of the same size reuse these threads and keep the pinning.
void PinOpenMpThreads(int threads);

#if defined(__x86_64__)
// The AMX peak loops' tile set-up, on the calling thread (only where CanRunAmxBf16, isa.h): tiles
// 0-7 all 16 rows x 64 bytes; C tiles 0-3 zeroed; A tiles 4, 5 loaded from a, a + 1 KB; B tiles 6,
// 7 from b, b + 1 KB.
void SetUpAmxTiles(const uint8_t* a, const uint8_t* b);
#endif

// The read-bandwidth kernel on its own, for sampling the bandwidth between a benchmark's timed
// calls: `threads` pinned threads (OpenMP's pool) each first-touch and then sum their own slice
// of a buffer of about `bytes`.
class ReadProbe {
 public:
  ReadProbe(int threads, int64_t bytes);
  ~ReadProbe();
  ReadProbe(const ReadProbe&) = delete;
  ReadProbe& operator=(const ReadProbe&) = delete;

  // One pass over the whole buffer: GB/s.
  double PassGbps();
  int64_t bytes() const { return per_thread_ * threads_ * 4; }
  const char* kernel() const { return avx512_ ? "avx512" : "plain"; }

 private:
  int threads_;
  int64_t per_thread_ = 0;  // floats
  float* buf_ = nullptr;
  bool avx512_ = false;
};

// Measures all limits with `threads` pinned threads over a `read_bytes` buffer.
MachineLimits MeasureMachineLimits(int threads, int64_t read_bytes = int64_t{1} << 30);
// The same with the read bandwidth taken on `probe` (built for `threads` threads), for a benchmark
// that keeps one probe to measure and to sample with.
MachineLimits MeasureMachineLimits(int threads, ReadProbe& probe);

// The register-resident peak kernels, one per family of MachineLimits' peak fields.
enum class PeakKernel { kF32Fma, kAvx512Bf16, kAmxBf16, kAvx512Vnni, kAmxInt8 };

// One pass of `kernel` on `threads` pinned threads (about 10 ms of the GPU machine's Xeon for the
// AMX kernels; the full measurement takes the best of 3): TFLOPS, or TOPS for the integer kernels;
// 0 where this machine cannot run it. For sampling the peak between a benchmark's timed calls,
// since a shared host's capacity moves by tens of percent within seconds (bench/RESULTS.md).
double SamplePeak(int threads, PeakKernel kernel);

// Each figure the larger of a's and b's (two measurements of one machine, e.g. before and after a
// benchmark's timed calls, so that other load on the host during one of them cannot lower a limit
// and so inflate a ratio to it); the rest from a.
MachineLimits BestOf(const MachineLimits& a, const MachineLimits& b);

}  // namespace tandem::bench
