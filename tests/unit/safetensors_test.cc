// Tests for common/safetensors.h and common/checkpoint.h: files are built byte by byte in a temp
// directory, so every corruption can be produced exactly.
#include "common/safetensors.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/bf16.h"
#include "common/checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// File building helpers.

template <typename T>
std::string Bytes(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

struct Spec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// 8-byte little-endian length + header + data.
std::string Raw(std::string_view header, std::string_view data, uint64_t header_len) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &header_len, 8);
  out.append(header);
  out.append(data);
  return out;
}
std::string Raw(std::string_view header, std::string_view data) {
  return Raw(header, data, header.size());
}
std::string Raw(std::string_view header, size_t data_bytes) {
  return Raw(header, std::string(data_bytes, '\x11'));
}

// A valid safetensors file holding `tensors` back to back.
std::string Build(const std::vector<Spec>& tensors,
                  const std::map<std::string, std::string>& metadata = {}) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const Spec& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // padding, as the reference writer does
  return Raw(text, data);
}

void WriteFile(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  ASSERT_TRUE(out.good()) << path;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           (std::string("tandem_st_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `content` to dir_/name and returns the path.
  std::string Write(const std::string& name, std::string_view content) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    WriteFile(p, content);
    return p.string();
  }

  // Open() of `content` must fail with a message naming the file and every one of `parts`.
  void ExpectOpenError(std::string_view content, const std::vector<std::string>& parts) {
    const std::string path = Write("bad_" + std::to_string(counter_++) + ".safetensors", content);
    auto file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok()) << "opened a corrupt file: " << content;
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
    for (const std::string& part : parts) {
      EXPECT_THAT(std::string(file.status().message()), HasSubstr(part));
    }
  }

  std::unique_ptr<Checkpoint> OpenCheckpoint(const fs::path& dir) {
    auto ckpt = Checkpoint::Open(dir.string());
    EXPECT_TRUE(ckpt.ok()) << ckpt.status();
    return ckpt.ok() ? std::move(ckpt).value() : nullptr;
  }

  // A checkpoint directory dir_/name holding `tensors` as model.safetensors.
  std::unique_ptr<Checkpoint> SingleFileCheckpoint(const std::vector<Spec>& tensors,
                                                   const std::string& name = "model") {
    Write(name + "/model.safetensors", Build(tensors));
    return OpenCheckpoint(dir_ / name);
  }

  fs::path dir_;
  int counter_ = 0;
};

float Bits32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Scalar conversions (common/bf16.h).

TEST(Bf16Test, F8E4M3KnownEncodings) {
  // Bias 7, 3 mantissa bits, no infinities; S.1111.111 is NaN.
  EXPECT_EQ(F8E4M3ToFloat(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(F8E4M3ToFloat(0x80)));
  EXPECT_EQ(F8E4M3ToFloat(0x38), 1.0f);  // e=7
  EXPECT_EQ(F8E4M3ToFloat(0xB8), -1.0f);
  EXPECT_EQ(F8E4M3ToFloat(0x40), 2.0f);  // e=8
  EXPECT_EQ(F8E4M3ToFloat(0xC0), -2.0f);
  EXPECT_EQ(F8E4M3ToFloat(0x3C), 1.5f);        // e=7, m=4
  EXPECT_EQ(F8E4M3ToFloat(0x30), 0.5f);        // e=6
  EXPECT_EQ(F8E4M3ToFloat(0x08), 1.0f / 64);   // smallest normal, 2^-6
  EXPECT_EQ(F8E4M3ToFloat(0x01), 1.0f / 512);  // smallest subnormal, 2^-9
  EXPECT_EQ(F8E4M3ToFloat(0x07), 7.0f / 512);  // largest subnormal
  EXPECT_EQ(F8E4M3ToFloat(0x7E), 448.0f);      // largest finite: 1.75 * 2^8
  EXPECT_EQ(F8E4M3ToFloat(0xFE), -448.0f);
  EXPECT_EQ(F8E4M3ToFloat(0x78), 256.0f);  // e=15, m=0 is finite in the fn variant
  EXPECT_TRUE(std::isnan(F8E4M3ToFloat(0x7F)));
  EXPECT_TRUE(std::isnan(F8E4M3ToFloat(0xFF)));
  // Positive codes are strictly increasing, negatives mirror them.
  for (int v = 1; v <= 0x7E; ++v) {
    EXPECT_LT(F8E4M3ToFloat(v - 1), F8E4M3ToFloat(v)) << v;
    EXPECT_EQ(F8E4M3ToFloat(v | 0x80), -F8E4M3ToFloat(v)) << v;
  }
}

TEST(Bf16Test, F8E5M2KnownEncodings) {
  EXPECT_EQ(F8E5M2ToFloat(0x3C), 1.0f);
  EXPECT_EQ(F8E5M2ToFloat(0xC0), -2.0f);
  EXPECT_EQ(F8E5M2ToFloat(0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(F8E5M2ToFloat(0x7B), 57344.0f);
  EXPECT_TRUE(std::isinf(F8E5M2ToFloat(0x7C)));
  EXPECT_TRUE(std::isnan(F8E5M2ToFloat(0x7D)));
}

TEST(Bf16Test, F16MatchesReferenceForAllEncodings) {
  for (uint32_t v = 0; v <= 0xffff; ++v) {
    const uint32_t e = (v >> 10) & 0x1f, m = v & 0x3ff;
    float ref = e == 0    ? std::ldexp(static_cast<float>(m), -24)
                : e == 31 ? (m ? NAN : INFINITY)
                          : std::ldexp(static_cast<float>(m | 0x400), static_cast<int>(e) - 25);
    if (v & 0x8000) ref = -ref;
    const float got = F16ToFloat(static_cast<uint16_t>(v));
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(got)) << v;
    } else {
      EXPECT_EQ(got, ref) << v;
      EXPECT_EQ(std::signbit(got), std::signbit(ref)) << v;
    }
  }
}

TEST(Bf16Test, FloatToBf16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBf16(Bits32(0x3F808000)), 0x3F80);  // tie -> even
  EXPECT_EQ(FloatToBf16(Bits32(0x3F818000)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(FloatToBf16(Bits32(0x3F808001)), 0x3F81);  // above half
  EXPECT_EQ(FloatToBf16(Bits32(0x3F807FFF)), 0x3F80);  // below half
  EXPECT_EQ(FloatToBf16(Bits32(0x7F7FFFFF)), 0x7F80);  // FLT_MAX rounds to inf
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(NAN)) != Bf16ToFloat(FloatToBf16(NAN)), true);
}

TEST(DTypeTest, SizesAndNames) {
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF8E4M3), 1u);
  EXPECT_EQ(DTypeSize(DType::kF64), 8u);
  EXPECT_EQ(DTypeSize(DType::kBool), 1u);
  EXPECT_EQ(DTypeName(DType::kF8E5M2), "F8_E5M2");
  for (const char* name : {"BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
                           "F64", "I64", "U64", "F8_E4M3", "F8_E5M2"}) {
    auto d = ParseDType(name);
    ASSERT_TRUE(d.ok()) << name;
    EXPECT_EQ(DTypeName(*d), name);
  }
  EXPECT_FALSE(ParseDType("bf16").ok());
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile: valid files.

TEST_F(SafetensorsTest, OpensValidFileAsZeroCopyViews) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const std::vector<int32_t> b = {-7, 8};
  const std::string path = Write(
      "x.safetensors",
      Build({{"a", "F32", {2, 3}, Bytes(a)}, {"b", "I32", {2}, Bytes(b)}}, {{"format", "pt"}}));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const auto& tensors = (*file)->tensors();
  ASSERT_EQ(tensors.size(), 2u);
  const TensorView& va = tensors.at("a");
  EXPECT_EQ(va.dtype, DType::kF32);
  EXPECT_EQ(va.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(va.numel(), 6);
  EXPECT_EQ(va.nbytes, 24u);
  EXPECT_EQ(va.file, path);
  EXPECT_EQ(std::memcmp(va.data, a.data(), 24), 0);
  const TensorView& vb = tensors.at("b");
  EXPECT_EQ(vb.data, va.data + 24);  // contiguous views into one mapping
  EXPECT_EQ(std::memcmp(vb.data, b.data(), 8), 0);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->Find("b"), &vb);
  EXPECT_EQ((*file)->Find("c"), nullptr);
}

TEST_F(SafetensorsTest, ScalarEmptyAndHeaderOnly) {
  const std::string path =
      Write("x.safetensors", Build({{"s", "F32", {}, Bytes(std::vector<float>{2.5f})},
                                    {"e", "BF16", {0, 4}, ""},
                                    {"t", "U8", {3}, "abc"}}));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().at("s").numel(), 1);
  EXPECT_EQ((*file)->tensors().at("e").numel(), 0);
  EXPECT_EQ((*file)->tensors().at("e").nbytes, 0u);

  auto empty = SafetensorsFile::Open(Write("empty.safetensors", Raw("{}", 0)));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE((*empty)->tensors().empty());
  // Zero-length tensors may share an offset with others without overlapping.
  auto zeros = SafetensorsFile::Open(
      Write("zeros.safetensors", Raw(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                     4)));
  EXPECT_TRUE(zeros.ok()) << zeros.status();
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile: every corruption is a clean error naming the file (and tensor).

TEST_F(SafetensorsTest, RejectsShortAndMissingFiles) {
  ExpectOpenError("", {"shorter than the 8-byte"});
  ExpectOpenError("abc", {"3 bytes"});
  auto missing = SafetensorsFile::Open((dir_ / "nope.safetensors").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("nope.safetensors"));
  auto directory = SafetensorsFile::Open(dir_.string());
  ASSERT_FALSE(directory.ok());
  EXPECT_THAT(std::string(directory.status().message()), HasSubstr("not a regular file"));
}

TEST_F(SafetensorsTest, RejectsBadHeaderLength) {
  ExpectOpenError(Raw("{}", "", 1000), {"header length 1000", "past the end"});
  ExpectOpenError(Raw("{}", "", 3), {"past the end"});
  ExpectOpenError(Raw("{}", "", uint64_t{1} << 40), {"exceeds"});
  ExpectOpenError(Raw("{}", "", ~uint64_t{0}), {"exceeds"});
}

TEST_F(SafetensorsTest, RejectsBadJson) {
  ExpectOpenError(Raw(R"({"a": )", 0), {"not valid JSON"});
  ExpectOpenError(Raw("", 0), {"not valid JSON"});
  ExpectOpenError(Raw("{} trailing", 0), {"not valid JSON"});
  ExpectOpenError(Raw("{/* c */}", 0), {"not valid JSON"});
  ExpectOpenError(Raw("[1, 2]", 0), {"array, not an object"});
  ExpectOpenError(Raw(R"("s")", 0), {"not an object"});
  ExpectOpenError(Raw("42", 0), {"not an object"});
  ExpectOpenError(Raw(std::string(100, '[') + std::string(100, ']'), 0), {"nests deeper"});
  ExpectOpenError(Raw(R"({"a": "\xff\xfe"})", 0), {"not valid JSON"});  // invalid UTF-8
}

TEST_F(SafetensorsTest, RejectsBadEntries) {
  auto entry = [](const std::string& body) { return R"({"w": {)" + body + "}}"; };
  ExpectOpenError(Raw(entry(R"("dtype":"F12","shape":[1],"data_offsets":[0,4])"), 4),
                  {"'w'", "unknown dtype 'F12'"});
  ExpectOpenError(Raw(entry(R"("dtype":7,"shape":[1],"data_offsets":[0,4])"), 4),
                  {"'w'", "dtype is not a string"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":[2,2],"data_offsets":[0,12])"), 16),
                  {"'w'", "hold 12 bytes", "needs 16"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":[2,2],"data_offsets":[0,16])"), 8),
                  {"'w'", "past the data section"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":[1],"data_offsets":[8,4])"), 8),
                  {"'w'", "begin 8 > end 4"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":[-1,2],"data_offsets":[0,8])"), 8),
                  {"'w'", "negative"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":[2.0],"data_offsets":[0,8])"), 8),
                  {"'w'", "not an integer"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":["2"],"data_offsets":[0,8])"), 8),
                  {"'w'", "not an integer"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":2,"data_offsets":[0,8])"), 8),
                  {"'w'", "shape is not an array"});
  ExpectOpenError(
      Raw(entry(R"("dtype":"U8","shape":[4294967296,4294967296,16],"data_offsets":[0,8])"), 8),
      {"'w'", "overflows"});
  ExpectOpenError(
      Raw(entry(R"("dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8])"), 8),
      {"'w'", "overflows"});
  ExpectOpenError(
      Raw(entry(R"("dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,8])"), 8),
      {"'w'", "too large"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":[1],"data_offsets":[0])"), 4),
                  {"'w'", "data_offsets"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":[1],"data_offsets":[-4,0])"), 4),
                  {"'w'", "data_offsets begin is negative"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":[1],"data_offsets":{"a":1})"), 4),
                  {"'w'", "data_offsets"});
  ExpectOpenError(Raw(entry(R"("shape":[1],"data_offsets":[0,4])"), 4), {"'w'", "missing 'dtype'"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","data_offsets":[0,4])"), 4),
                  {"'w'", "missing 'shape'"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":[1])"), 4), {"'w'", "missing 'data_offsets'"});
  ExpectOpenError(Raw(entry(R"("dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1)"), 4),
                  {"'w'", "unknown key 'extra'"});
  ExpectOpenError(Raw(R"({"w": 5})", 4), {"'w'", "not an object"});
  ExpectOpenError(Raw(R"({"w": [1]})", 4), {"'w'", "not an object"});
}

TEST_F(SafetensorsTest, RejectsOverlapDuplicatesAndBadMetadata) {
  ExpectOpenError(Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                      12),
                  {"'b'", "overlap tensor 'a'"});
  ExpectOpenError(Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})",
                      8),
                  {"overlap"});
  ExpectOpenError(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                      R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                      8),
                  {"'a'", "more than once"});
  ExpectOpenError(Raw(R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", 4),
                  {"duplicate key 'dtype'"});
  ExpectOpenError(Raw(R"({"__metadata__": [1]})", 0), {"__metadata__ is not an object"});
  ExpectOpenError(Raw(R"({"__metadata__": {"k": 1}})", 0), {"__metadata__", "'k'", "string"});
}

TEST_F(SafetensorsTest, EveryTruncationFails) {
  const std::string good = Build({{"a", "F32", {3}, Bytes(std::vector<float>{1, 2, 3})},
                                  {"b", "BF16", {2, 2}, Bytes(std::vector<uint16_t>{1, 2, 3, 4})}});
  ASSERT_TRUE(SafetensorsFile::Open(Write("good.safetensors", good)).ok());
  for (size_t len = 0; len < good.size(); ++len) {
    SCOPED_TRACE(len);
    ExpectOpenError(std::string_view(good).substr(0, len), {});
  }
}

// Random byte edits of a valid header must only ever produce errors or valid files, never a
// crash; whatever opens must also read without touching memory outside the mapping.
TEST_F(SafetensorsTest, FuzzedHeadersNeverCrash) {
  std::vector<uint8_t> fp8(6 * 5);
  for (size_t i = 0; i < fp8.size(); ++i) fp8[i] = static_cast<uint8_t>(i * 37);
  const std::string good =
      Build({{"a", "F32", {3}, Bytes(std::vector<float>{1, 2, 3})},
             {"b", "BF16", {2, 2}, Bytes(std::vector<uint16_t>{1, 2, 3, 4})},
             {"w", "F8_E4M3", {6, 5}, Bytes(fp8)},
             {"w_scale_inv", "F32", {2, 2}, Bytes(std::vector<float>{1, 2, 3, 4})},
             {"h", "F16", {2}, Bytes(std::vector<uint16_t>{0x3C00, 0x4000})}},
            {{"format", "pt"}});
  uint64_t header_len;
  std::memcpy(&header_len, good.data(), 8);
  const std::string alphabet = "{}[]\":,-0123456789eE. ";
  std::mt19937 rng(20240611);
  int opened = 0;
  const char* iters_env = std::getenv("TANDEM_FUZZ_ITERS");  // longer runs by hand
  const int iters = iters_env != nullptr ? std::atoi(iters_env) : 3000;
  for (int iter = 0; iter < iters; ++iter) {
    std::string bad = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % (8 + header_len);
      switch (rng() % 3) {
        case 0:
          bad[pos] ^= static_cast<char>(1u << (rng() % 8));
          break;
        case 1:
          bad[pos] = static_cast<char>(rng());
          break;
        default:
          bad[pos] = alphabet[rng() % alphabet.size()];
          break;
      }
    }
    const fs::path model = dir_ / "fuzz";
    fs::create_directories(model);
    WriteFile(model / "model.safetensors", bad);
    auto file = SafetensorsFile::Open((model / "model.safetensors").string());
    if (!file.ok()) {
      EXPECT_THAT(std::string(file.status().message()), HasSubstr("model.safetensors"));
      continue;
    }
    ++opened;
    uint64_t checksum = 0;
    for (const auto& [name, view] : (*file)->tensors()) {
      ASSERT_EQ(view.nbytes, static_cast<size_t>(view.numel()) * DTypeSize(view.dtype));
      for (size_t i = 0; i < view.nbytes; ++i) checksum += view.data[i];
    }
    (void)checksum;
    auto ckpt = Checkpoint::Open(model.string());
    if (!ckpt.ok()) continue;
    for (const std::string& name : (*ckpt)->Names()) {
      (void)(*ckpt)->ReadFloat32(name);
      (void)(*ckpt)->ReadBf16(name, {}, {2, 3});
    }
  }
  RecordProperty("opened", opened);
  EXPECT_GT(opened, 0);  // some edits (e.g. in metadata) leave a valid file
}

// ---------------------------------------------------------------------------------------------
// Checkpoint: conversions.

TEST_F(SafetensorsTest, RoundTripF32) {
  const std::vector<float> v = {1.5f,
                                -2.25f,
                                3.14159274f,
                                1e-30f,
                                -0.0f,
                                INFINITY,
                                Bits32(0x3F808000),
                                Bits32(0x3F818000),
                                Bits32(0x3F808001)};
  auto ckpt = SingleFileCheckpoint({{"x", "F32", {3, 3}, Bytes(v)}});
  ASSERT_NE(ckpt, nullptr);
  auto f = ckpt->ReadFloat32("x", std::vector<int64_t>{3, 3});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, v);
  EXPECT_TRUE(std::signbit((*f)[4]));
  auto b = ckpt->ReadBf16("x");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, (std::vector<uint16_t>{0x3FC0, 0xC010, 0x4049, FloatToBf16(1e-30f), 0x8000, 0x7F80,
                                       0x3F80, 0x3F82, 0x3F81}));
  EXPECT_FALSE(ckpt->StoredAsBf16OrNarrower("x"));
}

TEST_F(SafetensorsTest, RoundTripF16) {
  const std::vector<uint16_t> v = {0x3C00, 0xC000, 0x3555, 0x0001, 0x7BFF, 0x7C00, 0x8000, 0x03FF};
  const std::vector<float> expected = {1.0f,    -2.0f,    0.333251953125f, std::ldexp(1.0f, -24),
                                       65504.f, INFINITY, -0.0f,           std::ldexp(1023.f, -24)};
  auto ckpt = SingleFileCheckpoint({{"x", "F16", {8}, Bytes(v)}});
  ASSERT_NE(ckpt, nullptr);
  auto f = ckpt->ReadFloat32("x");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, expected);
  auto b = ckpt->ReadBf16("x");
  ASSERT_TRUE(b.ok()) << b.status();
  // 0.333251953125 = 0x3EAAA000 -> bf16 0x3EAB; 65504 = 0x477FE000 -> 0x4780 (rounds up).
  EXPECT_EQ(*b, (std::vector<uint16_t>{0x3F80, 0xC000, 0x3EAB, 0x3380, 0x4780, 0x7F80, 0x8000,
                                       FloatToBf16(std::ldexp(1023.f, -24))}));
}

TEST_F(SafetensorsTest, RoundTripBf16) {
  const std::vector<uint16_t> v = {0x3F80, 0xC040, 0x3EAA, 0x7F80, 0x0001, 0x8000};
  auto ckpt = SingleFileCheckpoint({{"x", "BF16", {2, 3}, Bytes(v)}});
  ASSERT_NE(ckpt, nullptr);
  auto f = ckpt->ReadFloat32("x");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(
      *f, (std::vector<float>{1.0f, -3.0f, 0.33203125f, INFINITY, std::ldexp(1.0f, -133), -0.0f}));
  auto b = ckpt->ReadBf16("x");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, v);
  EXPECT_TRUE(ckpt->StoredAsBf16OrNarrower("x"));
}

TEST_F(SafetensorsTest, RoundTripF64) {
  const std::vector<double> v = {1.0, -0.1, 1e300, 0.5 + 1.0 / 1024};
  auto ckpt = SingleFileCheckpoint({{"x", "F64", {4}, Bytes(v)}});
  ASSERT_NE(ckpt, nullptr);
  auto f = ckpt->ReadFloat32("x");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, (std::vector<float>{1.0f, -0.1f, INFINITY, 0.5f + 1.0f / 1024}));
  auto b = ckpt->ReadBf16("x");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, (std::vector<uint16_t>{0x3F80, FloatToBf16(-0.1f), 0x7F80, 0x3F00}));
}

// FP8 E4M3 codes with their values, reasoned out from the format (bias 7, 3 mantissa bits).
struct Fp8Code {
  uint8_t code;
  float value;
};
constexpr Fp8Code kFp8Table[] = {
    {0x00, 0.0f},
    {0x38, 1.0f},
    {0x40, 2.0f},
    {0xC0, -2.0f},
    {0x01, 0x1p-9f},
    {0x7E, 448.0f},
    {0x08, 0x1p-6f},
    {0xB8, -1.0f},
    {0x3C, 1.5f},
    {0x44, 3.0f},
    {0x30, 0.5f},
    {0x07, 7 * 0x1p-9f},
    {0x09, 1.125f * 0x1p-6f},
    {0xFE, -448.0f},
    {0x5C, 24.0f},
    {0x3F, 1.875f},
};
constexpr size_t kFp8TableSize = sizeof(kFp8Table) / sizeof(kFp8Table[0]);

size_t Fp8Pattern(int64_t r, int64_t c) {
  return static_cast<size_t>(r * 7 + c * 3) % kFp8TableSize;
}

// A [rows, cols] FP8 weight built from kFp8Table.
std::string Fp8Weight(int64_t rows, int64_t cols) {
  std::string w(static_cast<size_t>(rows * cols), '\0');
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      w[r * cols + c] = static_cast<char>(kFp8Table[Fp8Pattern(r, c)].code);
  }
  return w;
}

TEST_F(SafetensorsTest, Fp8BlockDequantRaggedBlocks) {
  const int64_t rows = 130, cols = 200;
  const float scales[2][2] = {{0.5f, 3.0f}, {0.1f, -2.0f}};
  const std::vector<float> scale_flat = {scales[0][0], scales[0][1], scales[1][0], scales[1][1]};
  auto ckpt = SingleFileCheckpoint({{"w", "F8_E4M3", {rows, cols}, Fp8Weight(rows, cols)},
                                    {"w_scale_inv", "F32", {2, 2}, Bytes(scale_flat)}});
  ASSERT_NE(ckpt, nullptr);
  auto f = ckpt->ReadFloat32("w", std::vector<int64_t>{rows, cols});
  ASSERT_TRUE(f.ok()) << f.status();
  auto b = ckpt->ReadBf16("w");
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(f->size(), static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float scale = scales[r < 128 ? 0 : 1][c < 128 ? 0 : 1];
      const float expected = kFp8Table[Fp8Pattern(r, c)].value * scale;
      ASSERT_EQ((*f)[r * cols + c], expected) << r << "," << c;
      ASSERT_EQ((*b)[r * cols + c], FloatToBf16(expected)) << r << "," << c;
    }
  }
  // Spot checks against hand-computed values at the block corners.
  // (0,0): pattern 0 -> 0x00 * 0.5 = 0;  (0,1): pattern 3 -> 0xC0 = -2, * 0.5 = -1.
  EXPECT_EQ((*f)[0], 0.0f);
  EXPECT_EQ((*f)[1], -1.0f);
  EXPECT_EQ((*b)[1], 0xBF80);
  // (0,128): pattern 384 % 16 = 0 -> 0; (0,129): pattern 387 % 16 = 3 -> -2 * 3 = -6.
  EXPECT_EQ((*f)[129], -6.0f);
  // (129,199): pattern (903 + 597) % 16 = 1500 % 16 = 12 -> 1.125 * 2^-6 * -2.
  EXPECT_EQ((*f)[129 * cols + 199], -2.25f * 0x1p-6f);
  // (128,0): pattern 896 % 16 = 0; (128,1): pattern 899 % 16 = 3 -> -2 * 0.1f.
  EXPECT_EQ((*f)[128 * cols + 1], -2.0f * 0.1f);
  EXPECT_TRUE(ckpt->StoredAsBf16OrNarrower("w"));
}

TEST_F(SafetensorsTest, Fp8Bf16ScaleAndCustomBlock) {
  const int64_t rows = 130, cols = 200;
  // Block [64, 64]: grid [3, 4]; bf16 scales 0.5, 3.0, 0.10009765625 (0x3DCD), -2.0.
  const uint16_t bf16_scales[4] = {0x3F00, 0x4040, 0x3DCD, 0xC000};
  std::vector<uint16_t> grid(12);
  for (int i = 0; i < 12; ++i) grid[i] = bf16_scales[i % 4];
  auto ckpt = SingleFileCheckpoint({{"w", "F8_E4M3", {rows, cols}, Fp8Weight(rows, cols)},
                                    {"w_scale_inv", "BF16", {3, 4}, Bytes(grid)}});
  ASSERT_NE(ckpt, nullptr);
  auto f = ckpt->ReadFloat32("w", {}, {64, 64});
  ASSERT_TRUE(f.ok()) << f.status();
  auto b = ckpt->ReadBf16("w", {}, {64, 64});
  ASSERT_TRUE(b.ok()) << b.status();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float scale = Bf16ToFloat(grid[(r / 64) * 4 + c / 64]);
      const float expected = kFp8Table[Fp8Pattern(r, c)].value * scale;
      ASSERT_EQ((*f)[r * cols + c], expected) << r << "," << c;
      ASSERT_EQ((*b)[r * cols + c], FloatToBf16(expected)) << r << "," << c;
    }
  }
  // The default 128x128 block does not match a [3, 4] grid.
  auto wrong = ckpt->ReadFloat32("w");
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(std::string(wrong.status().message()),
              HasSubstr("'w_scale_inv' has shape [3, 4]; expected [2, 2]"));
}

TEST_F(SafetensorsTest, Fp8BatchedExperts) {
  // [2 experts, 3, 4] with block [2, 2]: scale grid [2, 2, 2].
  std::string w(24, '\0');
  for (int i = 0; i < 24; ++i) w[i] = static_cast<char>(kFp8Table[i % kFp8TableSize].code);
  std::vector<float> s = {1, 2, 3, 4, 5, 6, 7, 8};
  auto ckpt = SingleFileCheckpoint(
      {{"e", "F8_E4M3", {2, 3, 4}, w}, {"e_scale_inv", "F32", {2, 2, 2}, Bytes(s)}});
  ASSERT_NE(ckpt, nullptr);
  auto f = ckpt->ReadFloat32("e", {}, {2, 2});
  ASSERT_TRUE(f.ok()) << f.status();
  for (int e = 0; e < 2; ++e) {
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 4; ++c) {
        const int i = (e * 3 + r) * 4 + c;
        EXPECT_EQ((*f)[i], kFp8Table[i % kFp8TableSize].value * s[e * 4 + (r / 2) * 2 + c / 2]);
      }
    }
  }
}

TEST_F(SafetensorsTest, ConversionErrors) {
  auto ckpt = SingleFileCheckpoint({{"w", "F8_E4M3", {4, 4}, std::string(16, '\x38')},
                                    {"v", "F8_E4M3", {4}, std::string(4, '\x38')},
                                    {"u", "F8_E4M3", {4, 4}, std::string(16, '\x38')},
                                    {"u_scale_inv", "F32", {2, 1}, Bytes(std::vector<float>{1, 2})},
                                    {"t", "F8_E4M3", {4, 4}, std::string(16, '\x38')},
                                    {"t_scale_inv", "I32", {1, 1}, Bytes(std::vector<int32_t>{1})},
                                    {"i", "I32", {2}, Bytes(std::vector<int32_t>{1, 2})},
                                    {"f", "F32", {2, 3}, Bytes(std::vector<float>(6))}});
  ASSERT_NE(ckpt, nullptr);
  auto msg = [](const auto& result) { return std::string(result.status().message()); };

  auto missing = ckpt->ReadFloat32("w");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(msg(missing), HasSubstr("'w'"));
  EXPECT_THAT(msg(missing), HasSubstr("'w_scale_inv'"));
  EXPECT_THAT(msg(missing), HasSubstr("model.safetensors"));
  EXPECT_FALSE(ckpt->ReadBf16("w").ok());

  auto one_d = ckpt->ReadFloat32("v");
  ASSERT_FALSE(one_d.ok());
  EXPECT_THAT(msg(one_d), HasSubstr("at least 2 dimensions"));

  auto bad_scale = ckpt->ReadBf16("u");
  ASSERT_FALSE(bad_scale.ok());
  EXPECT_THAT(msg(bad_scale), HasSubstr("'u_scale_inv' has shape [2, 1]; expected [1, 1]"));

  auto int_scale = ckpt->ReadFloat32("t");
  ASSERT_FALSE(int_scale.ok());
  EXPECT_THAT(msg(int_scale), HasSubstr("'t_scale_inv' has dtype I32"));

  auto bad_block = ckpt->ReadFloat32("u", {}, {0, 128});
  ASSERT_FALSE(bad_block.ok());
  EXPECT_THAT(msg(bad_block), HasSubstr("invalid FP8 block size"));

  auto int_tensor = ckpt->ReadFloat32("i");
  ASSERT_FALSE(int_tensor.ok());
  EXPECT_THAT(msg(int_tensor), HasSubstr("'i'"));
  EXPECT_THAT(msg(int_tensor), HasSubstr("dtype I32 is not a floating type"));
  EXPECT_FALSE(ckpt->ReadBf16("i").ok());
  EXPECT_FALSE(ckpt->StoredAsBf16OrNarrower("i"));
  EXPECT_FALSE(ckpt->StoredAsBf16OrNarrower("nope"));

  auto shape = ckpt->ReadFloat32("f", std::vector<int64_t>{3, 2});
  ASSERT_FALSE(shape.ok());
  EXPECT_THAT(msg(shape), HasSubstr("tensor 'f'"));
  EXPECT_THAT(msg(shape), HasSubstr("expected shape [3, 2], got [2, 3]"));
  EXPECT_FALSE(ckpt->ReadBf16("f", std::vector<int64_t>{6}).ok());

  std::vector<float> small(5);
  absl::Status into = ckpt->ReadFloat32Into("f", small);
  EXPECT_THAT(std::string(into.message()), HasSubstr("output buffer holds 5 elements"));
  std::vector<float> exact(6, 1.0f);
  EXPECT_TRUE(ckpt->ReadFloat32Into("f", exact).ok());
  EXPECT_EQ(exact, std::vector<float>(6, 0.0f));

  auto absent = ckpt->ReadFloat32("nope");
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.status().code(), absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------------------------
// Checkpoint: directory layouts.

TEST_F(SafetensorsTest, SingleFileCheckpoint) {
  auto ckpt = SingleFileCheckpoint({{"a", "F32", {1}, Bytes(std::vector<float>{7})},
                                    {"b", "BF16", {1}, Bytes(std::vector<uint16_t>{0x3F80})}});
  ASSERT_NE(ckpt, nullptr);
  EXPECT_EQ(ckpt->Names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(ckpt->Has("a"));
  EXPECT_FALSE(ckpt->Has("c"));
  auto a = ckpt->Get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->name, "a");
  EXPECT_THAT((*a)->file, HasSubstr("model.safetensors"));
  auto c = ckpt->Get("c");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("'c'"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr((dir_ / "model").string()));
}

TEST_F(SafetensorsTest, ShardedCheckpointWithIndex) {
  const fs::path model = dir_ / "sharded";
  Write("sharded/model-00001-of-00002.safetensors",
        Build({{"x", "F32", {2}, Bytes(std::vector<float>{1, 2})},
               {"y", "F16", {1}, Bytes(std::vector<uint16_t>{0x3C00})}}));
  Write("sharded/model-00002-of-00002.safetensors",
        Build({{"z", "BF16", {1}, Bytes(std::vector<uint16_t>{0x4000})}}));
  // A stray consolidated file holding the same tensors must be ignored when an index exists.
  Write("sharded/consolidated.safetensors",
        Build({{"x", "F32", {2}, Bytes(std::vector<float>{9, 9})}}));
  Write("sharded/model.safetensors.index.json",
        R"({"metadata": {"total_size": 14}, "weight_map": {
              "x": "model-00001-of-00002.safetensors",
              "y": "model-00001-of-00002.safetensors",
              "z": "model-00002-of-00002.safetensors"}})");
  auto ckpt = OpenCheckpoint(model);
  ASSERT_NE(ckpt, nullptr);
  EXPECT_EQ(ckpt->files().size(), 2u);
  EXPECT_EQ(ckpt->Names(), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_THAT((*ckpt->Get("z"))->file, HasSubstr("model-00002-of-00002"));
  EXPECT_EQ(*ckpt->ReadFloat32("x"), (std::vector<float>{1, 2}));
  EXPECT_EQ(*ckpt->ReadFloat32("y"), (std::vector<float>{1}));
  EXPECT_EQ(*ckpt->ReadFloat32("z"), (std::vector<float>{2}));
}

TEST_F(SafetensorsTest, GlobsSafetensorsWithoutIndex) {
  Write("glob/a.safetensors", Build({{"p", "F32", {1}, Bytes(std::vector<float>{1})}}));
  Write("glob/b.safetensors", Build({{"q", "F32", {1}, Bytes(std::vector<float>{2})}}));
  Write("glob/notes.txt", "hello");
  auto ckpt = OpenCheckpoint(dir_ / "glob");
  ASSERT_NE(ckpt, nullptr);
  EXPECT_EQ(ckpt->Names(), (std::vector<std::string>{"p", "q"}));

  Write("dup/a.safetensors", Build({{"p", "F32", {1}, Bytes(std::vector<float>{1})}}));
  Write("dup/b.safetensors", Build({{"p", "F32", {1}, Bytes(std::vector<float>{2})}}));
  auto dup = Checkpoint::Open((dir_ / "dup").string());
  ASSERT_FALSE(dup.ok());
  EXPECT_THAT(std::string(dup.status().message()), HasSubstr("'p' is in two shards"));
  EXPECT_THAT(std::string(dup.status().message()), HasSubstr("a.safetensors"));
  EXPECT_THAT(std::string(dup.status().message()), HasSubstr("b.safetensors"));
}

TEST_F(SafetensorsTest, CheckpointDirectoryErrors) {
  auto missing = Checkpoint::Open((dir_ / "absent").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("absent"));

  fs::create_directories(dir_ / "empty");
  auto empty = Checkpoint::Open((dir_ / "empty").string());
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("no model.safetensors.index.json"));

  // A corrupt shard's error propagates with the shard's path.
  Write("corrupt/model.safetensors", "short");
  auto corrupt = Checkpoint::Open((dir_ / "corrupt").string());
  ASSERT_FALSE(corrupt.ok());
  EXPECT_THAT(std::string(corrupt.status().message()), HasSubstr("corrupt/model.safetensors"));
}

TEST_F(SafetensorsTest, IndexErrors) {
  const std::string shard = Build({{"x", "F32", {1}, Bytes(std::vector<float>{1})}});
  auto open_with_index = [&](const std::string& name, const std::string& index) {
    Write(name + "/s1.safetensors", shard);
    Write(name + "/model.safetensors.index.json", index);
    return Checkpoint::Open((dir_ / name).string());
  };
  auto msg = [](const auto& result) { return std::string(result.status().message()); };

  auto missing_file = open_with_index(
      "missing_file", R"({"weight_map": {"x": "s1.safetensors", "y": "s2.safetensors"}})");
  ASSERT_FALSE(missing_file.ok());
  EXPECT_THAT(msg(missing_file), HasSubstr("s2.safetensors"));
  EXPECT_THAT(msg(missing_file), HasSubstr("'y'"));
  EXPECT_THAT(msg(missing_file), HasSubstr("does not exist"));

  auto missing_tensor = open_with_index("missing_tensor", R"({"weight_map": {"x": "s1.safetensors",
                                                           "w": "s1.safetensors"}})");
  ASSERT_FALSE(missing_tensor.ok());
  EXPECT_THAT(msg(missing_tensor), HasSubstr("'w'"));
  EXPECT_THAT(msg(missing_tensor), HasSubstr("s1.safetensors"));
  EXPECT_THAT(msg(missing_tensor), HasSubstr("does not contain it"));

  // s2 holds y, which the index places there, and also x, which the index places in s1.
  Write("two_shards/s2.safetensors", Build({{"x", "F32", {1}, Bytes(std::vector<float>{1})},
                                            {"y", "F32", {1}, Bytes(std::vector<float>{2})}}));
  auto two = open_with_index("two_shards", R"({"weight_map": {"x": "s1.safetensors",
                                                               "y": "s2.safetensors"}})");
  ASSERT_FALSE(two.ok());
  EXPECT_THAT(msg(two), HasSubstr("'x' is in two shards"));

  auto bad_json = open_with_index("bad_json", R"({"weight_map": )");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_THAT(msg(bad_json), HasSubstr("model.safetensors.index.json"));
  EXPECT_THAT(msg(bad_json), HasSubstr("not valid JSON"));

  auto no_map = open_with_index("no_map", R"({"metadata": {}})");
  ASSERT_FALSE(no_map.ok());
  EXPECT_THAT(msg(no_map), HasSubstr("'weight_map'"));

  auto not_object = open_with_index("not_object", "[]");
  ASSERT_FALSE(not_object.ok());
  EXPECT_THAT(msg(not_object), HasSubstr("not an object"));

  auto traversal = open_with_index("traversal", R"({"weight_map": {"x": "../s1.safetensors"}})");
  ASSERT_FALSE(traversal.ok());
  EXPECT_THAT(msg(traversal), HasSubstr("not a shard file name"));

  auto non_string = open_with_index("non_string", R"({"weight_map": {"x": 3}})");
  ASSERT_FALSE(non_string.ok());
  EXPECT_THAT(msg(non_string), HasSubstr("'x'"));
}

}  // namespace
}  // namespace tandem
