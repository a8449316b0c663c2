// A Hugging Face model directory's weights: `model.safetensors`, or the shards named by
// `model.safetensors.index.json`, or (with neither) every `*.safetensors` file in the directory.
//
// Open() maps and validates every shard (see safetensors.h) and the index: every file the index
// names exists, every tensor it names is in that file, and no tensor is in two shards. Tensors
// in a shard that the index does not name are served too.
//
// ReadFloat32 / ReadBf16 convert a floating tensor into a fresh buffer; F8 tensors are
// dequantized block-wise with the companion `<name>_scale_inv` tensor (DeepSeek-V3's format).
// The *Into variants write into a caller-provided buffer of exactly numel() elements.
//
// Thread safety: Open() may be called from any thread. A Checkpoint is immutable after Open();
// every const method may be called concurrently (the readers keep no shared state, so loading
// can be spread over threads by tensor). TensorView pointers stay valid while the Checkpoint
// lives.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/safetensors.h"

namespace tandem {

class Checkpoint {
 public:
  static constexpr std::string_view kSingleFile = "model.safetensors";
  static constexpr std::string_view kIndexFile = "model.safetensors.index.json";
  static constexpr std::string_view kScaleSuffix = "_scale_inv";

  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // Shards, sorted by file name.
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

  bool Has(std::string_view name) const;
  // NotFound naming the tensor and the directory.
  absl::StatusOr<const TensorView*> Get(std::string_view name) const;
  // All tensor names, sorted.
  std::vector<std::string> Names() const;

  // Reads a floating tensor as float32: F32 copied; F16 / BF16 / F64 converted; F8_E4M3 /
  // F8_E5M2 dequantized with `<name>_scale_inv` (F32, BF16 or F16), whose shape must be
  // [..., ceil(rows / fp8_block[0]), ceil(cols / fp8_block[1])] for a [..., rows, cols]
  // weight (leading dimensions equal): each element times its block's scale, in float32.
  // `expected_shape`, if non-empty, must equal the tensor's shape.
  // Errors: NotFound (tensor or scale missing), InvalidArgument (shape mismatch, integer
  // dtype, bad scale shape/dtype, F8 tensor with fewer than 2 dimensions, bad block size).
  absl::StatusOr<std::vector<float>> ReadFloat32(std::string_view name,
                                                 std::span<const int64_t> expected_shape = {},
                                                 std::array<int64_t, 2> fp8_block = {128,
                                                                                     128}) const;

  // As ReadFloat32, into bfloat16 bits: BF16 copied; F32 / F16 rounded to nearest even; F64
  // narrowed to float32 first (as torch does); F8 dequantized in float32 (value * scale) and
  // then rounded, matching torch's (w.float() * s).to(torch.bfloat16).
  absl::StatusOr<std::vector<uint16_t>> ReadBf16(std::string_view name,
                                                 std::span<const int64_t> expected_shape = {},
                                                 std::array<int64_t, 2> fp8_block = {128,
                                                                                     128}) const;

  // As above, into `out`, which must hold exactly numel() elements.
  absl::Status ReadFloat32Into(std::string_view name, std::span<float> out,
                               std::span<const int64_t> expected_shape = {},
                               std::array<int64_t, 2> fp8_block = {128, 128}) const;
  absl::Status ReadBf16Into(std::string_view name, std::span<uint16_t> out,
                            std::span<const int64_t> expected_shape = {},
                            std::array<int64_t, 2> fp8_block = {128, 128}) const;

  // True when the stored dtype is BF16 or an F8 type, i.e. keeping the tensor as bf16 loses no
  // storage precision (for F8 the block scale multiplication still rounds). False for absent
  // tensors.
  bool StoredAsBf16OrNarrower(std::string_view name) const;

 private:
  Checkpoint() = default;

  template <typename Out>
  absl::Status ReadInto(std::string_view name, std::span<Out> out,
                        std::span<const int64_t> expected_shape,
                        std::array<int64_t, 2> fp8_block) const;

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*, std::less<>> tensors_;
};

}  // namespace tandem
