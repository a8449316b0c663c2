#include "common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; big-endian hosts are not supported");

using json = nlohmann::json;

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},          {DType::kI8, "I8", 1},
    {DType::kI16, "I16", 2},   {DType::kU16, "U16", 2},        {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI32, "I32", 4},        {DType::kU32, "U32", 4},
    {DType::kF32, "F32", 4},   {DType::kF64, "F64", 8},        {DType::kI64, "I64", 8},
    {DType::kU64, "U64", 8},   {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kF8E5M2, "F8_E5M2", 1},
};

const DTypeInfo& Info(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  return kDTypes[0];  // unreachable for valid enum values
}

// Real headers nest three deep (header -> entry -> shape); anything much deeper is hostile.
constexpr int kMaxJsonDepth = 16;

// A cheap scan that bounds bracket nesting outside strings, so that a hostile header cannot
// drive the JSON parser or the DOM's destructor into deep recursion.
bool NestingWithin(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

// A non-negative JSON integer, or an error message.
absl::StatusOr<uint64_t> NonNegativeInt(const json& v, const char* what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is negative (", v.dump(), ")"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, " is not an integer (", v.dump().substr(0, 64), ")"));
}

class HeaderParser {
 public:
  HeaderParser(const std::string& path, size_t data_size) : path_(path), data_size_(data_size) {}

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file ", path_, ": ", what));
  }
  absl::Status TensorError(absl::string_view tensor, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors file ", path_, ": tensor '", tensor, "': ", what));
  }

  // Parses `text` (the JSON header) into a DOM, rejecting duplicate keys at any level.
  absl::StatusOr<json> Parse(std::string_view text) const {
    if (!NestingWithin(text, kMaxJsonDepth)) {
      return Error(absl::StrCat("header JSON nests deeper than ", kMaxJsonDepth, " levels"));
    }
    std::vector<std::set<std::string>> open_objects;
    std::string duplicate;
    bool duplicate_is_tensor = false;
    json::parser_callback_t callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
      switch (event) {
        case json::parse_event_t::object_start:
          open_objects.emplace_back();
          break;
        case json::parse_event_t::object_end:
          if (!open_objects.empty()) open_objects.pop_back();
          break;
        case json::parse_event_t::key:
          if (!open_objects.empty() && parsed.is_string() &&
              !open_objects.back().insert(parsed.get_ref<const std::string&>()).second &&
              duplicate.empty()) {
            duplicate = parsed.get_ref<const std::string&>();
            duplicate_is_tensor = open_objects.size() == 1;
          }
          break;
        default:
          break;
      }
      return true;
    };
    json header;
    try {
      header = json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true);
    } catch (const json::exception& e) {
      return Error(absl::StrCat("header is not valid JSON: ", e.what()));
    } catch (const std::exception& e) {
      return Error(absl::StrCat("cannot parse header: ", e.what()));
    }
    if (!duplicate.empty()) {
      if (duplicate_is_tensor) return TensorError(duplicate, "appears more than once in header");
      return Error(absl::StrCat("duplicate key '", duplicate, "' in header"));
    }
    return header;
  }

  absl::Status ParseMetadata(const json& value, std::map<std::string, std::string>* out) const {
    if (!value.is_object()) return Error("__metadata__ is not an object");
    for (const auto& [key, v] : value.items()) {
      if (!v.is_string()) {
        return Error(absl::StrCat("__metadata__ value for '", key, "' is not a string"));
      }
      (*out)[key] = v.get<std::string>();
    }
    return absl::OkStatus();
  }

  // Validates one tensor entry; fills everything but `data` and `file`, and returns the
  // entry's [begin, end) within the data section in `range`.
  absl::Status ParseEntry(const std::string& name, const json& entry, TensorView* view,
                          std::pair<uint64_t, uint64_t>* range) const {
    if (!entry.is_object()) return TensorError(name, "entry is not an object");
    for (const auto& [key, v] : entry.items()) {
      if (key != "dtype" && key != "shape" && key != "data_offsets") {
        return TensorError(name, absl::StrCat("unknown key '", key, "'"));
      }
    }
    for (const char* key : {"dtype", "shape", "data_offsets"}) {
      if (!entry.contains(key)) return TensorError(name, absl::StrCat("missing '", key, "'"));
    }

    const json& dtype = entry["dtype"];
    if (!dtype.is_string()) return TensorError(name, "dtype is not a string");
    absl::StatusOr<DType> parsed_dtype = ParseDType(dtype.get_ref<const std::string&>());
    if (!parsed_dtype.ok()) return TensorError(name, parsed_dtype.status().message());
    view->dtype = *parsed_dtype;

    const json& shape = entry["shape"];
    if (!shape.is_array()) return TensorError(name, "shape is not an array");
    uint64_t numel = 1;
    view->shape.clear();
    for (const json& dim : shape) {
      absl::StatusOr<uint64_t> d = NonNegativeInt(dim, "shape dimension");
      if (!d.ok()) return TensorError(name, d.status().message());
      if (*d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return TensorError(name, absl::StrCat("shape dimension ", *d, " is too large"));
      }
      view->shape.push_back(static_cast<int64_t>(*d));
      if (__builtin_mul_overflow(numel, *d, &numel)) {
        return TensorError(name, absl::StrCat("shape ", shape.dump(), " overflows"));
      }
    }
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(DTypeSize(view->dtype)), &nbytes) ||
        numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return TensorError(name, absl::StrCat("shape ", shape.dump(), " overflows"));
    }

    const json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2) {
      return TensorError(name, "data_offsets is not an array [begin, end]");
    }
    absl::StatusOr<uint64_t> begin = NonNegativeInt(offsets[0], "data_offsets begin");
    if (!begin.ok()) return TensorError(name, begin.status().message());
    absl::StatusOr<uint64_t> end = NonNegativeInt(offsets[1], "data_offsets end");
    if (!end.ok()) return TensorError(name, end.status().message());
    if (*begin > *end) {
      return TensorError(name, absl::StrCat("data_offsets begin ", *begin, " > end ", *end));
    }
    if (*end > data_size_) {
      return TensorError(
          name, absl::StrCat("data_offsets end ", *end, " is past the data section (", data_size_,
                             " bytes; file truncated?)"));
    }
    if (*end - *begin != nbytes) {
      return TensorError(
          name, absl::StrCat("data_offsets [", *begin, ", ", *end, ") hold ", *end - *begin,
                             " bytes but ", std::string(DTypeName(view->dtype)), " ",
                             ShapeToString(view->shape), " needs ", nbytes));
    }
    view->name = name;
    view->nbytes = static_cast<size_t>(nbytes);
    *range = {*begin, *end};
    return absl::OkStatus();
  }

 private:
  const std::string& path_;
  size_t data_size_;
};

}  // namespace

size_t DTypeSize(DType dtype) { return Info(dtype).size; }

std::string_view DTypeName(DType dtype) { return Info(dtype).name; }

absl::StatusOr<DType> ParseDType(std::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.name == name) return info.dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", absl::string_view(name.data(), name.size()), "'"));
}

bool IsFloatingDType(DType dtype) {
  switch (dtype) {
    case DType::kF16:
    case DType::kBF16:
    case DType::kF32:
    case DType::kF64:
    case DType::kF8E4M3:
    case DType::kF8E5M2:
      return true;
    default:
      return false;
  }
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated not to overflow at Open()
  return n;
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

const TensorView* SafetensorsFile::Find(std::string_view name) const {
  auto it = tensors_.find(std::string(name));
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  auto prefix = [&path] { return absl::StrCat("safetensors file ", path, ": "); };
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat(prefix(), "cannot open"));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat(prefix(), "cannot stat"));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(prefix(), "not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(prefix(), "file is ", size, " bytes, shorter than the 8-byte header length"));
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) return absl::ErrnoToStatus(map_errno, absl::StrCat(prefix(), "mmap"));
  file->map_ = map;
  file->map_size_ = size;
  const uint8_t* base = static_cast<const uint8_t*>(map);

  uint64_t header_len;
  std::memcpy(&header_len, base, sizeof header_len);
  if (header_len > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(prefix(), "header length ", header_len,
                                                   " exceeds the ", kMaxHeaderBytes,
                                                   "-byte limit (not a safetensors file?)"));
  }
  if (header_len > size - 8) {
    return absl::InvalidArgumentError(absl::StrCat(prefix(), "header length ", header_len,
                                                   " runs past the end of the file (", size,
                                                   " bytes; file truncated?)"));
  }
  const size_t data_size = size - 8 - header_len;
  const uint8_t* data = base + 8 + header_len;

  HeaderParser parser(path, data_size);
  TANDEM_ASSIGN_OR_RETURN(json header, parser.Parse(std::string_view(
                                           reinterpret_cast<const char*>(base + 8), header_len)));
  if (!header.is_object()) {
    return parser.Error(absl::StrCat("header is a JSON ", header.type_name(), ", not an object"));
  }

  // (begin, end, name) of every non-empty tensor, for the overlap check.
  std::vector<std::tuple<uint64_t, uint64_t, const std::string*>> ranges;
  ranges.reserve(header.size());
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      TANDEM_RETURN_IF_ERROR(parser.ParseMetadata(value, &file->metadata_));
      continue;
    }
    TensorView view;
    std::pair<uint64_t, uint64_t> range;
    TANDEM_RETURN_IF_ERROR(parser.ParseEntry(key, value, &view, &range));
    view.data = data + range.first;
    view.file = path;
    auto [it, inserted] = file->tensors_.emplace(key, std::move(view));
    if (range.second > range.first) ranges.emplace_back(range.first, range.second, &it->first);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    const auto& [prev_begin, prev_end, prev_name] = ranges[i - 1];
    const auto& [begin, end, name] = ranges[i];
    if (begin < prev_end) {
      return parser.TensorError(
          *name, absl::StrCat("bytes [", begin, ", ", end, ") overlap tensor '", *prev_name, "' [",
                              prev_begin, ", ", prev_end, ")"));
    }
  }
  return file;
}

}  // namespace tandem
