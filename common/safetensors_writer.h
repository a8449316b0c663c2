// Writes a .safetensors file (header JSON + packed data), for the demo model and tests.
// Reentrant; the caller owns the data.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

struct TensorToWrite {
  std::string name;
  std::string dtype;  // safetensors spelling: "BF16", "F32", "F8_E4M3", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // exactly product(shape) * dtype size
};

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace tandem
