// tokenizer.json "decoder" components: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace
// and Sequence of those, each reproducing the HF library's decode_chain (tokens -> tokens) so
// that invalid byte sequences turn into U+FFFD exactly where the HF library puts them.
// Others (WordPiece, BPEDecoder, CTC) are refused by ParseDecoder.
// Immutable after parsing; safe from any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer_json.h"

namespace tandem::tokenizer_internal {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
  // decode_chain, then concatenation.
  std::string Decode(std::vector<std::string> tokens) const;
};

// `j` is the non-null "decoder" object.
absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const Json& j);

}  // namespace tandem::tokenizer_internal
