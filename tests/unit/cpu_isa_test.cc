// Run-time ISA detection and the --cpu-kernel choice (kernels/cpu/isa.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/isa.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

CpuFeatures Avx512Bf16Machine() {
  CpuFeatures f;
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512_bf16 = f.avx512_vnni = true;
  f.os_avx512_state = true;
  return f;
}

CpuFeatures AmxMachine() {
  CpuFeatures f = Avx512Bf16Machine();
  f.amx_tile = f.amx_bf16 = f.amx_int8 = true;
  f.os_amx_state = f.amx_permitted = true;
  return f;
}

TEST(ParseCpuKernelTest, AcceptsTheFourNames) {
  EXPECT_EQ(*ParseCpuKernel("auto"), CpuKernel::kAuto);
  EXPECT_EQ(*ParseCpuKernel("reference"), CpuKernel::kReference);
  EXPECT_EQ(*ParseCpuKernel("avx512"), CpuKernel::kAvx512);
  EXPECT_EQ(*ParseCpuKernel("amx"), CpuKernel::kAmx);
  for (CpuKernel k : {CpuKernel::kAuto, CpuKernel::kReference, CpuKernel::kAvx512, CpuKernel::kAmx})
    EXPECT_EQ(*ParseCpuKernel(CpuKernelName(k)), k);
}

TEST(ParseCpuKernelTest, RejectsOthersNamingTheChoices) {
  for (const char* bad : {"", "AVX512", "avx2", "amx-bf16"}) {
    auto k = ParseCpuKernel(bad);
    ASSERT_FALSE(k.ok()) << bad;
    EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(k.status().message(), HasSubstr("auto, reference, avx512 or amx"));
  }
}

TEST(ResolveCpuKernelTest, PlainMachineGetsReferenceAndClearErrors) {
  const CpuFeatures none;
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kAuto, none), CpuKernel::kReference);
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kReference, none), CpuKernel::kReference);
  auto avx = ResolveCpuKernel(CpuKernel::kAvx512, none);
  ASSERT_FALSE(avx.ok());
  EXPECT_EQ(avx.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(avx.status().message(), HasSubstr("--cpu-kernel avx512"));
  EXPECT_THAT(avx.status().message(), HasSubstr("avx512_bf16"));
  auto amx = ResolveCpuKernel(CpuKernel::kAmx, none);
  ASSERT_FALSE(amx.ok());
  EXPECT_EQ(amx.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(amx.status().message(), HasSubstr("this CPU has no AMX"));
}

TEST(ResolveCpuKernelTest, Avx512NeedsBf16AndTheOsZmmState) {
  CpuFeatures f = Avx512Bf16Machine();
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kAuto, f), CpuKernel::kAvx512);
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kAvx512, f), CpuKernel::kAvx512);
  EXPECT_FALSE(ResolveCpuKernel(CpuKernel::kAmx, f).ok());

  CpuFeatures no_bf16 = f;
  no_bf16.avx512_bf16 = false;  // e.g. Skylake-SP, Ice Lake
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kAuto, no_bf16), CpuKernel::kReference);
  auto s = ResolveCpuKernel(CpuKernel::kAvx512, no_bf16);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("missing: avx512_bf16)"));

  CpuFeatures no_os = f;
  no_os.os_avx512_state = false;
  s = ResolveCpuKernel(CpuKernel::kAvx512, no_os);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("ZMM"));
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kAuto, no_os), CpuKernel::kReference);
}

TEST(ResolveCpuKernelTest, AmxNeedsHardwareOsStateAndPermission) {
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kAuto, AmxMachine()), CpuKernel::kAmx);
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kAmx, AmxMachine()), CpuKernel::kAmx);
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kAvx512, AmxMachine()), CpuKernel::kAvx512);

  CpuFeatures no_state = AmxMachine();
  no_state.os_amx_state = false;
  no_state.amx_permitted = false;
  auto s = ResolveCpuKernel(CpuKernel::kAmx, no_state);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("tile state"));
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kAuto, no_state), CpuKernel::kAvx512);

  CpuFeatures refused = AmxMachine();
  refused.amx_permitted = false;
  s = ResolveCpuKernel(CpuKernel::kAmx, refused);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("the OS did not grant AMX tile state"));

  CpuFeatures no_bf16_tiles = AmxMachine();
  no_bf16_tiles.amx_bf16 = false;
  s = ResolveCpuKernel(CpuKernel::kAmx, no_bf16_tiles);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("amx_bf16"));
}

TEST(DetectCpuFeaturesTest, ThisMachine) {
  const CpuFeatures& f = DetectCpuFeatures();
  std::printf("CPU: %s\n", DescribeCpu().c_str());
  EXPECT_FALSE(DescribeCpu().empty());
  EXPECT_EQ(*ResolveCpuKernel(CpuKernel::kReference), CpuKernel::kReference);
  auto avx = ResolveCpuKernel(CpuKernel::kAvx512);
  EXPECT_EQ(avx.ok(), CanRunAvx512Bf16(f)) << avx.status();
  auto amx = ResolveCpuKernel(CpuKernel::kAmx);
  EXPECT_EQ(amx.ok(), CanRunAmxBf16(f)) << amx.status();
  const CpuKernel chosen = *ResolveCpuKernel(CpuKernel::kAuto);
  EXPECT_NE(chosen, CpuKernel::kAuto);
  if (CanRunAmxBf16(f)) {
    EXPECT_EQ(chosen, CpuKernel::kAmx);
  } else if (CanRunAvx512Bf16(f)) {
    EXPECT_EQ(chosen, CpuKernel::kAvx512);
  } else {
    EXPECT_EQ(chosen, CpuKernel::kReference);
  }
}

TEST(DetectCpuFeaturesTest, AgreesWithProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line) && line.rfind("flags", 0) != 0) {
  }
  if (line.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags line";
  std::istringstream words(line.substr(line.find(':') + 1));
  std::vector<std::string> flags;
  for (std::string w; words >> w;) flags.push_back(w);
  auto has = [&](const char* name) {
    return std::find(flags.begin(), flags.end(), name) != flags.end();
  };
  const CpuFeatures& f = DetectCpuFeatures();
  EXPECT_EQ(f.avx512f, has("avx512f"));
  EXPECT_EQ(f.avx512bw, has("avx512bw"));
  EXPECT_EQ(f.avx512vl, has("avx512vl"));
  EXPECT_EQ(f.avx512_bf16, has("avx512_bf16"));
  EXPECT_EQ(f.avx512_vnni, has("avx512_vnni"));
  EXPECT_EQ(f.amx_tile, has("amx_tile"));
  EXPECT_EQ(f.amx_bf16, has("amx_bf16"));
  EXPECT_EQ(f.amx_int8, has("amx_int8"));
}

TEST(DetectCpuFeaturesTest, OneResultAcrossThreads) {
  std::vector<const CpuFeatures*> seen(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) threads.emplace_back([&, i] { seen[i] = &DetectCpuFeatures(); });
  for (auto& t : threads) t.join();
  for (const CpuFeatures* p : seen) EXPECT_EQ(p, &DetectCpuFeatures());
}

}  // namespace
}  // namespace tandem
