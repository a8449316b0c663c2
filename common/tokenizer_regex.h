// PCRE2 regular expressions for tokenizer patterns (Split pre-tokenizer, Replace normalizer,
// GPT-2's ByteLevel pattern). Compiled in UTF + UCP mode (so \s, \w, \d and POSIX classes are
// Unicode-aware, as in Oniguruma, which the HF library uses), JIT-compiled when available.
// A compiled Regex is immutable and may be used from any number of threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::tokenizer_internal {

class Regex {
 public:
  // `pattern` is UTF-8. Errors carry PCRE2's message and the offset.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  // A pattern matching `literal` exactly.
  static absl::StatusOr<std::unique_ptr<Regex>> Literal(std::string_view literal);
  ~Regex();

  // Every non-overlapping match [start, end) scanning left to right, with Rust's rule for empty
  // matches (an empty match right after the previous match is skipped). `text` must be valid
  // UTF-8.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

 private:
  explicit Regex(void* code) : code_(code) {}
  void* code_;  // pcre2_code_8*
};

}  // namespace tandem::tokenizer_internal
