#include "kernels/cpu/isa.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#if defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace tandem {
namespace {

#if defined(__x86_64__)
uint64_t ReadXcr0() {
  uint32_t eax, edx;
  asm volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool RequestAmxPermission() {
#if defined(__linux__)
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures Detect() {
  CpuFeatures f;
  uint32_t a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const uint32_t max_subleaf = a;
  f.avx512f = (b >> 16) & 1;
  f.avx512bw = (b >> 30) & 1;
  f.avx512vl = (b >> 31) & 1;
  f.avx512_vnni = (c >> 11) & 1;
  f.amx_bf16 = (d >> 22) & 1;
  f.amx_tile = (d >> 24) & 1;
  f.amx_int8 = (d >> 25) & 1;
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512_bf16 = (a >> 5) & 1;
  }
  if (osxsave) {
    const uint64_t xcr0 = ReadXcr0();
    // Bits 1-2: SSE and AVX state; 5-7: opmask, upper ZMM0-15, ZMM16-31.
    constexpr uint64_t kZmmState = (1u << 1) | (1u << 2) | (1u << 5) | (1u << 6) | (1u << 7);
    // Bits 17-18: XTILECFG and XTILEDATA.
    constexpr uint64_t kTileState = (1u << 17) | (1u << 18);
    f.os_avx512_state = (xcr0 & kZmmState) == kZmmState;
    f.os_amx_state = (xcr0 & kTileState) == kTileState;
  }
  if (f.amx_tile && f.os_amx_state) f.amx_permitted = RequestAmxPermission();
  return f;
}
#else
CpuFeatures Detect() { return CpuFeatures{}; }
#endif

}  // namespace

std::string_view CpuKernelName(CpuKernel kernel) {
  switch (kernel) {
    case CpuKernel::kAuto:
      return "auto";
    case CpuKernel::kReference:
      return "reference";
    case CpuKernel::kAvx512:
      return "avx512";
    case CpuKernel::kAmx:
      return "amx";
  }
  return "?";
}

absl::StatusOr<CpuKernel> ParseCpuKernel(std::string_view name) {
  for (CpuKernel k : {CpuKernel::kAuto, CpuKernel::kReference, CpuKernel::kAvx512, CpuKernel::kAmx})
    if (name == CpuKernelName(k)) return k;
  return absl::InvalidArgumentError(absl::StrCat("--cpu-kernel ", "\"",
                                                 absl::string_view(name.data(), name.size()), "\"",
                                                 ": expected auto, reference, avx512 or amx"));
}

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = Detect();  // initialised once, thread-safe
  return features;
}

bool HasAvx512FBw() {
  static const bool has = [] {
    const CpuFeatures& f = DetectCpuFeatures();
    return f.avx512f && f.avx512bw && f.os_avx512_state;
  }();
  return has;
}

bool CanRunAvx512Bf16(const CpuFeatures& f) {
  return f.avx512f && f.avx512bw && f.avx512vl && f.avx512_bf16 && f.avx512_vnni &&
         f.os_avx512_state;
}

bool CanRunAmxBf16(const CpuFeatures& f) {
  return f.amx_tile && f.amx_bf16 && f.amx_int8 && f.os_amx_state && f.amx_permitted &&
         CanRunAvx512Bf16(f);
}

namespace {

// The missing pieces for the AVX-512 kernels (bf16 and VNNI), e.g. "avx512_bf16, OS ZMM state".
std::string MissingAvx512(const CpuFeatures& f) {
  std::vector<std::string> missing;
  if (!f.avx512f) missing.push_back("avx512f");
  if (!f.avx512bw) missing.push_back("avx512bw");
  if (!f.avx512vl) missing.push_back("avx512vl");
  if (!f.avx512_bf16) missing.push_back("avx512_bf16");
  if (!f.avx512_vnni) missing.push_back("avx512_vnni");
  if (!f.os_avx512_state) missing.push_back("the OS does not save the AVX-512 (ZMM) state");
  return absl::StrJoin(missing, ", ");
}

}  // namespace

absl::StatusOr<CpuKernel> ResolveCpuKernel(CpuKernel requested, const CpuFeatures& f) {
  switch (requested) {
    case CpuKernel::kAuto:
      if (CanRunAmxBf16(f)) return CpuKernel::kAmx;
      if (CanRunAvx512Bf16(f)) return CpuKernel::kAvx512;
      return CpuKernel::kReference;
    case CpuKernel::kReference:
      return CpuKernel::kReference;
    case CpuKernel::kAvx512:
      if (CanRunAvx512Bf16(f)) return CpuKernel::kAvx512;
      return absl::FailedPreconditionError(
          absl::StrCat("--cpu-kernel avx512: this CPU cannot run the AVX-512 kernels (missing: ",
                       MissingAvx512(f), ")"));
    case CpuKernel::kAmx:
      if (!f.amx_tile || !f.amx_bf16 || !f.amx_int8) {
        return absl::FailedPreconditionError(
            "--cpu-kernel amx: this CPU has no AMX (amx_tile, amx_bf16, amx_int8)");
      }
      if (!f.os_amx_state) {
        return absl::FailedPreconditionError(
            "--cpu-kernel amx: the OS does not save the AMX tile state (XCR0 bits 17-18)");
      }
      if (!f.amx_permitted) {
        return absl::FailedPreconditionError(
            "--cpu-kernel amx: the OS did not grant AMX tile state "
            "(arch_prctl ARCH_REQ_XCOMP_PERM failed; Linux >= 5.16 is needed)");
      }
      if (!CanRunAvx512Bf16(f)) {
        return absl::FailedPreconditionError(
            absl::StrCat("--cpu-kernel amx: the AMX kernels also need the AVX-512 ones (missing: ",
                         MissingAvx512(f), ")"));
      }
      return CpuKernel::kAmx;
  }
  return absl::InvalidArgumentError("unknown CpuKernel value");
}

absl::StatusOr<CpuKernel> ResolveCpuKernel(CpuKernel requested) {
  return ResolveCpuKernel(requested, DetectCpuFeatures());
}

std::string DescribeCpu(const CpuFeatures& f) {
  std::vector<std::string> parts;
  const std::pair<bool, const char*> flags[] = {
      {f.avx512f, "avx512f"},         {f.avx512bw, "avx512bw"},       {f.avx512vl, "avx512vl"},
      {f.avx512_bf16, "avx512_bf16"}, {f.avx512_vnni, "avx512_vnni"}, {f.amx_tile, "amx_tile"},
      {f.amx_bf16, "amx_bf16"},       {f.amx_int8, "amx_int8"}};
  for (const auto& [present, name] : flags)
    if (present) parts.push_back(name);
  if (parts.empty()) parts.push_back("no avx512/amx");
  parts.push_back(absl::StrCat("os_zmm_state=", f.os_avx512_state ? "yes" : "no"));
  if (f.amx_tile) {
    parts.push_back(absl::StrCat("os_amx_state=", f.os_amx_state ? "yes" : "no"));
    parts.push_back(absl::StrCat("amx_permitted=", f.amx_permitted ? "yes" : "no"));
  }
  return absl::StrJoin(parts, " ");
}

std::string DescribeCpu() { return DescribeCpu(DetectCpuFeatures()); }

}  // namespace tandem
