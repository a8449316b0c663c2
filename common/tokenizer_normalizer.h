// tokenizer.json "normalizer" components: NFC, NFD, Prepend, Replace (literal or regex), Strip,
// and Sequence of those. Other normalizers (NFKC, Lowercase, BertNormalizer, Precompiled, ...)
// are refused by ParseNormalizer with an "unsupported normalizer" error.
// Normalizers run on each piece of the input between added tokens, as the HF library does.
// Immutable after parsing; safe from any thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer_json.h"

namespace tandem::tokenizer_internal {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites *s (valid UTF-8) in place.
  virtual void Normalize(std::string* s) const = 0;
};

// `j` is the non-null "normalizer" object. Errors name the component.
absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const Json& j);

}  // namespace tandem::tokenizer_internal
