#include "common/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/bf16.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr uint64_t kMaxIndexBytes = 256ull << 20;

bool IsRegularFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Shard names in an index are plain relative paths inside the model directory.
bool IsSafeShardName(const std::string& name) {
  if (name.empty()) return false;
  const fs::path p(name);
  if (p.is_absolute()) return false;
  for (const fs::path& part : p) {
    if (part == "..") return false;
  }
  return true;
}

absl::StatusOr<std::string> ReadSmallFile(const fs::path& path, uint64_t limit) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path.string(), ": ", ec.message()));
  if (size > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": ", size, " bytes exceeds the ", limit, "-byte limit"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (static_cast<uintmax_t>(in.gcount()) != size) {
    return absl::DataLossError(absl::StrCat(path.string(), ": short read"));
  }
  return text;
}

// Element loaders for the little-endian, possibly unaligned storage.
template <typename T>
inline T Load(const uint8_t* p, size_t i) {
  T v;
  std::memcpy(&v, p + i * sizeof(T), sizeof(T));
  return v;
}

// float -> the output element type.
template <typename Out>
inline Out Store(float f) {
  if constexpr (std::is_same_v<Out, float>) {
    return f;
  } else {
    return FloatToBf16(f);
  }
}

// One tight loop per source dtype: out[i] = Store(convert(element i)).
template <typename Out, typename Src, typename Convert>
void ConvertLoop(const uint8_t* data, std::span<Out> out, Convert convert) {
  const size_t n = out.size();
  Out* dst = out.data();
  for (size_t i = 0; i < n; ++i) dst[i] = Store<Out>(convert(Load<Src>(data, i)));
}

absl::Status CheckExpectedShape(const TensorView& view, std::span<const int64_t> expected) {
  if (expected.empty() ||
      std::equal(expected.begin(), expected.end(), view.shape.begin(), view.shape.end())) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("tensor '", view.name, "' in ", view.file, ": expected shape ",
                   ShapeToString(std::vector<int64_t>(expected.begin(), expected.end())), ", got ",
                   ShapeToString(view.shape)));
}

// absl here is built with its own string_view type; std::string_view needs an explicit bridge.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

int64_t CeilDiv(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->dir_ = dir;
  const fs::path root(dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint directory ", dir, " does not exist or is not a directory"));
  }

  // (shard file name, tensors the index places there).
  std::map<std::string, std::vector<std::string>> shards;
  const fs::path index_path = root / kIndexFile;
  const bool have_index = IsRegularFile(index_path);
  if (have_index) {
    const std::string where = absl::StrCat("checkpoint index ", index_path.string());
    TANDEM_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(index_path, kMaxIndexBytes));
    json index;
    try {
      index = json::parse(text);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON: ", e.what()));
    }
    if (!index.is_object())
      return absl::InvalidArgumentError(absl::StrCat(where, ": not an object"));
    auto weight_map = index.find("weight_map");
    if (weight_map == index.end() || !weight_map->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing object 'weight_map'"));
    }
    for (const auto& [tensor, file] : weight_map->items()) {
      if (!file.is_string() || !IsSafeShardName(file.get_ref<const std::string&>())) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": tensor '", tensor, "' maps to ",
                                                       file.dump(), ", not a shard file name"));
      }
      shards[file.get<std::string>()].push_back(tensor);
    }
    if (shards.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": 'weight_map' is empty"));
    }
    for (const auto& [file, tensors] : shards) {
      const fs::path shard_path = root / file;
      if (!IsRegularFile(shard_path)) {
        return absl::NotFoundError(absl::StrCat(where, ": shard ", shard_path.string(),
                                                " (holding tensor '", tensors.front(),
                                                "') does not exist"));
      }
      TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> shard,
                              SafetensorsFile::Open(shard_path.string()));
      for (const std::string& tensor : tensors) {
        if (shard->Find(tensor) == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": names tensor '", tensor,
                                                         "' in shard ", shard_path.string(),
                                                         ", which does not contain it"));
        }
      }
      ckpt->files_.push_back(std::move(shard));
    }
  } else if (IsRegularFile(root / kSingleFile)) {
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                            SafetensorsFile::Open((root / kSingleFile).string()));
    ckpt->files_.push_back(std::move(file));
  } else {
    std::vector<fs::path> found;
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".safetensors" && IsRegularFile(it->path())) {
        found.push_back(it->path());
      }
    }
    if (ec) {
      return absl::InternalError(absl::StrCat("checkpoint directory ", dir, ": ", ec.message()));
    }
    if (found.empty()) {
      return absl::NotFoundError(absl::StrCat("checkpoint directory ", dir, " has no ",
                                              Sv(kIndexFile), ", ", Sv(kSingleFile),
                                              " or other *.safetensors file"));
    }
    std::sort(found.begin(), found.end());
    for (const fs::path& p : found) {
      TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                              SafetensorsFile::Open(p.string()));
      ckpt->files_.push_back(std::move(file));
    }
  }

  for (const auto& file : ckpt->files_) {
    for (const auto& [name, view] : file->tensors()) {
      auto [it, inserted] = ckpt->tensors_.emplace(name, &view);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint ", dir, ": tensor '", name,
                                                       "' is in two shards: ", it->second->file,
                                                       " and ", file->path()));
      }
    }
  }
  return ckpt;
}

bool Checkpoint::Has(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }

absl::StatusOr<const TensorView*> Checkpoint::Get(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat("tensor '", Sv(name), "' not found in checkpoint ", dir_));
  }
  return it->second;
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, view] : tensors_) names.push_back(name);
  return names;
}

bool Checkpoint::StoredAsBf16OrNarrower(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return false;
  const DType d = it->second->dtype;
  return d == DType::kBF16 || d == DType::kF8E4M3 || d == DType::kF8E5M2;
}

template <typename Out>
absl::Status Checkpoint::ReadInto(std::string_view name, std::span<Out> out,
                                  std::span<const int64_t> expected_shape,
                                  std::array<int64_t, 2> fp8_block) const {
  TANDEM_ASSIGN_OR_RETURN(const TensorView* view, Get(name));
  auto error = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", Sv(name), "' in ", view->file, ": ", what));
  };
  TANDEM_RETURN_IF_ERROR(CheckExpectedShape(*view, expected_shape));
  const size_t numel = static_cast<size_t>(view->numel());
  if (out.size() != numel) {
    return error(absl::StrCat("output buffer holds ", out.size(), " elements, tensor has ", numel));
  }
  const uint8_t* data = view->data;
  switch (view->dtype) {
    case DType::kF32:
      if constexpr (std::is_same_v<Out, float>) {
        if (numel > 0) std::memcpy(out.data(), data, numel * sizeof(float));
      } else {
        ConvertLoop<Out, float>(data, out, [](float v) { return v; });
      }
      return absl::OkStatus();
    case DType::kBF16:
      if constexpr (std::is_same_v<Out, uint16_t>) {
        if (numel > 0) std::memcpy(out.data(), data, numel * sizeof(uint16_t));
      } else {
        ConvertLoop<Out, uint16_t>(data, out, Bf16ToFloat);
      }
      return absl::OkStatus();
    case DType::kF16:
      ConvertLoop<Out, uint16_t>(data, out, F16ToFloat);
      return absl::OkStatus();
    case DType::kF64:
      ConvertLoop<Out, double>(data, out, [](double v) { return static_cast<float>(v); });
      return absl::OkStatus();
    case DType::kF8E4M3:
    case DType::kF8E5M2:
      break;  // below
    default:
      return error(absl::StrCat("dtype ", Sv(DTypeName(view->dtype)),
                                " is not a floating type; cannot read it as ",
                                std::is_same_v<Out, float> ? "float32" : "bfloat16"));
  }

  // F8: block-wise dequantization with the companion scale tensor.
  const std::vector<int64_t>& shape = view->shape;
  if (shape.size() < 2) {
    return error(absl::StrCat(Sv(DTypeName(view->dtype)), " tensor of shape ", ShapeToString(shape),
                              ": block-scaled dequantization needs at least 2 dimensions"));
  }
  if (fp8_block[0] <= 0 || fp8_block[1] <= 0) {
    return error(absl::StrCat("invalid FP8 block size [", fp8_block[0], ", ", fp8_block[1], "]"));
  }
  const std::string scale_name = absl::StrCat(Sv(name), Sv(kScaleSuffix));
  auto scale_it = tensors_.find(scale_name);
  if (scale_it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat("tensor '", Sv(name), "' in ", view->file, " is ",
                                            Sv(DTypeName(view->dtype)), " but its scale tensor '",
                                            scale_name, "' is not in checkpoint ", dir_));
  }
  const TensorView* scale_view = scale_it->second;
  if (scale_view->dtype != DType::kF32 && scale_view->dtype != DType::kBF16 &&
      scale_view->dtype != DType::kF16) {
    return error(absl::StrCat("scale tensor '", scale_name, "' has dtype ",
                              Sv(DTypeName(scale_view->dtype)), "; expected F32, BF16 or F16"));
  }
  const size_t nd = shape.size();
  const int64_t rows = shape[nd - 2];
  const int64_t cols = shape[nd - 1];
  std::vector<int64_t> scale_shape(shape.begin(), shape.end() - 2);
  scale_shape.push_back(CeilDiv(rows, fp8_block[0]));
  scale_shape.push_back(CeilDiv(cols, fp8_block[1]));
  if (scale_view->shape != scale_shape) {
    return error(absl::StrCat("scale tensor '", scale_name, "' has shape ",
                              ShapeToString(scale_view->shape), "; expected ",
                              ShapeToString(scale_shape), " for block size [", fp8_block[0], ", ",
                              fp8_block[1], "]"));
  }
  std::vector<float> scale(static_cast<size_t>(scale_view->numel()));
  TANDEM_RETURN_IF_ERROR(ReadInto<float>(scale_name, std::span<float>(scale), {}, fp8_block));

  std::array<float, 256> lut;
  for (int i = 0; i < 256; ++i) {
    lut[i] = view->dtype == DType::kF8E4M3 ? F8E4M3ToFloat(static_cast<uint8_t>(i))
                                           : F8E5M2ToFloat(static_cast<uint8_t>(i));
  }
  if (numel == 0) return absl::OkStatus();
  const size_t batch = numel / static_cast<size_t>(rows * cols);
  const int64_t srows = scale_shape[nd - 2];
  const int64_t scols = scale_shape[nd - 1];
  const int64_t bc = fp8_block[1];
  Out* dst = out.data();
  for (size_t b = 0; b < batch; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* srow = scale.data() + (b * srows + r / fp8_block[0]) * scols;
      const size_t row_offset = (b * rows + r) * cols;
      const uint8_t* w = data + row_offset;
      Out* o = dst + row_offset;
      for (int64_t sc = 0; sc < scols; ++sc) {
        const float s = srow[sc];
        const int64_t c_end = std::min(cols, (sc + 1) * bc);
        for (int64_t c = sc * bc; c < c_end; ++c) o[c] = Store<Out>(lut[w[c]] * s);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Checkpoint::ReadFloat32Into(std::string_view name, std::span<float> out,
                                         std::span<const int64_t> expected_shape,
                                         std::array<int64_t, 2> fp8_block) const {
  return ReadInto<float>(name, out, expected_shape, fp8_block);
}

absl::Status Checkpoint::ReadBf16Into(std::string_view name, std::span<uint16_t> out,
                                      std::span<const int64_t> expected_shape,
                                      std::array<int64_t, 2> fp8_block) const {
  return ReadInto<uint16_t>(name, out, expected_shape, fp8_block);
}

absl::StatusOr<std::vector<float>> Checkpoint::ReadFloat32(std::string_view name,
                                                           std::span<const int64_t> expected_shape,
                                                           std::array<int64_t, 2> fp8_block) const {
  TANDEM_ASSIGN_OR_RETURN(const TensorView* view, Get(name));
  TANDEM_RETURN_IF_ERROR(CheckExpectedShape(*view, expected_shape));
  std::vector<float> out(static_cast<size_t>(view->numel()));
  TANDEM_RETURN_IF_ERROR(ReadInto<float>(name, std::span<float>(out), expected_shape, fp8_block));
  return out;
}

absl::StatusOr<std::vector<uint16_t>> Checkpoint::ReadBf16(std::string_view name,
                                                           std::span<const int64_t> expected_shape,
                                                           std::array<int64_t, 2> fp8_block) const {
  TANDEM_ASSIGN_OR_RETURN(const TensorView* view, Get(name));
  TANDEM_RETURN_IF_ERROR(CheckExpectedShape(*view, expected_shape));
  std::vector<uint16_t> out(static_cast<size_t>(view->numel()));
  TANDEM_RETURN_IF_ERROR(
      ReadInto<uint16_t>(name, std::span<uint16_t>(out), expected_shape, fp8_block));
  return out;
}

}  // namespace tandem
