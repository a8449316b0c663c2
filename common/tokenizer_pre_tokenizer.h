// tokenizer.json "pre_tokenizer" components: ByteLevel (GPT-2 alphabet, optional prefix space and
// GPT-2 regex), Split (regex or literal pattern; Removed / Isolated / MergedWithPrevious /
// MergedWithNext / Contiguous; invert), Metaspace (SentencePiece "▁" with prepend_scheme
// first / always / never and split), Digits, and Sequence of those. Others are refused by
// ParsePreTokenizer with an "unsupported pre_tokenizer" error.
// Immutable after parsing; safe from any thread.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer_json.h"

namespace tandem::tokenizer_internal {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece that is not an added token (id < 0) into sub-pieces, in order; empty
  // pieces are dropped, as the HF library drops them.
  virtual void PreTokenize(std::vector<Piece>* pieces) const = 0;
};

// `j` is the non-null "pre_tokenizer" object.
absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const Json& j);

}  // namespace tandem::tokenizer_internal
