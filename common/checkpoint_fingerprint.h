// A short identity of a checkpoint's content, so that two processes can check they read the same
// model: a hash over config.json and, for every tensor, its name, dtype, shape and the first and
// last bytes of its data. Cheap (no full read); changes whenever a file is replaced by another
// model's. Callable from any thread.
#pragma once

#include <string>

#include "common/checkpoint.h"
#include "common/status.h"

namespace tandem {

// 16 hex digits.
absl::StatusOr<std::string> CheckpointFingerprint(const Checkpoint& checkpoint,
                                                  const std::string& config_path);

}  // namespace tandem
