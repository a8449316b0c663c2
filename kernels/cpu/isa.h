// Run-time choice of the CPU kernel ISA. What the binary was compiled with says nothing about the
// machine it runs on: the features come from CPUID, the OS's saved-register state (XGETBV) and, for
// AMX, Linux's per-process permission request (arch_prctl ARCH_REQ_XCOMP_PERM). Detection runs
// once per process and is cached; every function here is safe from any thread.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tandem {

// The kernel family the routed experts run on (`--cpu-kernel`).
enum class CpuKernel { kAuto, kReference, kAvx512, kAmx };

// "auto", "reference", "avx512", "amx".
std::string_view CpuKernelName(CpuKernel kernel);

// Parses a `--cpu-kernel` value; InvalidArgument naming the accepted values otherwise.
absl::StatusOr<CpuKernel> ParseCpuKernel(std::string_view name);

// What this machine and OS let the process use.
struct CpuFeatures {
  // CPUID.
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
  bool amx_tile = false;
  bool amx_bf16 = false;
  bool amx_int8 = false;
  // XCR0: the OS saves the AVX-512 state (opmask, ZMM) and the AMX tile state.
  bool os_avx512_state = false;
  bool os_amx_state = false;
  // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) succeeded (only tried with AMX hardware).
  bool amx_permitted = false;
};

// This machine's features; detected (and the AMX permission requested) on the first call.
const CpuFeatures& DetectCpuFeatures();

// Whether this machine runs AVX-512F/BW code (the OS saves the ZMM state): the vectorized
// element-wise helpers (SiLU, activation conversion) take it; cached after the first call.
bool HasAvx512FBw();

// Whether the AVX-512 kernels (bf16 dot products, int8 VNNI) can run: avx512f, bw, vl, bf16,
// vnni and the OS's ZMM state.
bool CanRunAvx512Bf16(const CpuFeatures& f);
// Whether the AMX kernels can run: amx_tile, amx_bf16, amx_int8, the OS's tile state and
// permission, plus everything CanRunAvx512Bf16 needs (the AMX kernels use AVX-512 for the edges).
bool CanRunAmxBf16(const CpuFeatures& f);

// The kernel to use for `requested` on a machine with `features`: kAuto picks the best available
// (amx > avx512 > reference); kReference always resolves; asking for one the machine cannot run is
// FailedPrecondition naming what is missing. Never returns kAuto.
absl::StatusOr<CpuKernel> ResolveCpuKernel(CpuKernel requested, const CpuFeatures& features);
// Same, on this machine.
absl::StatusOr<CpuKernel> ResolveCpuKernel(CpuKernel requested);

// One line listing the features, e.g. "avx512f avx512bw avx512vl avx512_bf16 avx512_vnni
// os:zmm amx:none".
std::string DescribeCpu(const CpuFeatures& features);
std::string DescribeCpu();

}  // namespace tandem
