// tokenizer.json "post_processor": TemplateProcessing (single-sequence template: special-token
// ids before and after $A), ByteLevel (no effect on ids), and Sequence of those. Roberta / Bert
// processing are refused with an "unsupported post_processor" error.
// Immutable after parsing; safe from any thread.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer_json.h"

namespace tandem::tokenizer_internal {

// The effect of a post-processor on one sequence with add_special_tokens=true.
struct SpecialTemplate {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
};

// `j` is the "post_processor" value (may be null: empty template).
absl::StatusOr<SpecialTemplate> ParsePostProcessor(const Json& j);

}  // namespace tandem::tokenizer_internal
