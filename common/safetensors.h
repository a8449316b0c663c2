// Reader for one .safetensors file (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON describing the tensors, then the data section.
//
// The file is mmapped read-only and tensors are zero-copy views into the mapping. Open()
// validates the whole header before returning (dtype names, shapes, byte counts, offsets inside
// the data section, no overlapping byte ranges, unique names, string-only metadata); every error
// is an absl::Status naming the file and, where one is involved, the tensor.
//
// Thread safety: Open() may be called from any thread. A SafetensorsFile is immutable after
// Open(); all const methods may be called concurrently. TensorView::data is valid while the
// SafetensorsFile lives. If another process truncates the file while it is mapped, reads of the
// lost pages raise SIGBUS; checkpoints are assumed not to change while served.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem {

enum class DType {
  kBool,
  kU8,
  kI8,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
  kF8E4M3,
  kF8E5M2
};

// Bytes per element.
size_t DTypeSize(DType dtype);
// The safetensors spelling: "BF16", "F8_E4M3", ...
std::string_view DTypeName(DType dtype);
// Parses the safetensors spelling; InvalidArgument for an unknown name.
absl::StatusOr<DType> ParseDType(std::string_view name);
// F16, BF16, F32, F64, F8_E4M3, F8_E5M2.
bool IsFloatingDType(DType dtype);

// A tensor inside a mapped file. `data` is not necessarily aligned (the data section starts
// right after the JSON header): read elements with memcpy. Little-endian, row-major.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // empty for a scalar
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // path of the owning .safetensors file

  int64_t numel() const;  // 1 for a scalar, 0 if any dimension is 0
};

// Formats a shape as "[2, 3]".
std::string ShapeToString(const std::vector<int64_t>& shape);

class SafetensorsFile {
 public:
  // Header length cap, as in the reference implementation.
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  // "__metadata__" (empty when the header has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when absent.
  const TensorView* Find(std::string_view name) const;

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace tandem
