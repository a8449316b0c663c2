// tokenizer.json "added_tokens": special and user-added tokens that are recognized in the raw
// input before the model sees it. Splitting follows the HF library's AddedVocabulary: first the
// tokens with normalized=false are found in the raw text, then each remaining piece is normalized
// and the tokens with normalized=true (whose patterns are normalized the same way) are found in
// it. Matching is leftmost-longest and non-overlapping; single_word discards a match touching a
// word character, lstrip / rstrip absorb the whitespace around a match into the token.
// Immutable after parsing; safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer_bpe.h"
#include "common/tokenizer_json.h"

namespace tandem::tokenizer_internal {

class Normalizer;

struct AddedToken {
  std::string content;
  // What id -> token gives: the content, normalized when `normalized` (as the HF library does,
  // so e.g. "hey" under a Prepend("▁") normalizer decodes as "▁hey").
  std::string decoded;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

class AddedVocabulary {
 public:
  // `j` is the "added_tokens" array (or null). Tokens whose content is in the model vocabulary
  // take the model's id, as in the HF library.
  static absl::StatusOr<std::unique_ptr<AddedVocabulary>> Parse(const Json* j,
                                                                const BpeModel& model,
                                                                const Normalizer* normalizer);
  ~AddedVocabulary();

  // Splits `text` (valid UTF-8) into pieces: recognized tokens (id >= 0) and normalized free
  // text (id < 0), dropping empty pieces.
  std::vector<Piece> Split(std::string_view text, const Normalizer* normalizer) const;

  std::optional<int32_t> TokenToId(std::string_view content) const;
  // The token's `decoded` form; nullptr if not an added token.
  const std::string* IdToToken(int32_t id) const;
  // The token's content as written in tokenizer.json; nullptr if not an added token.
  const std::string* ContentOf(int32_t id) const;
  // True when `content` is the (unnormalized) content of a special token.
  bool IsSpecialContent(std::string_view content) const;
  bool IsSpecialId(int32_t id) const;
  int32_t max_id() const { return max_id_; }

 private:
  struct Trie;
  AddedVocabulary() = default;
  // One pass: splits every free piece on the tokens of `trie`.
  void SplitPieces(const Trie& trie, std::vector<Piece>* pieces) const;

  std::vector<AddedToken> tokens_;
  TokenMap by_content_;                        // content -> index in tokens_
  std::unordered_map<int32_t, size_t> by_id_;  // id -> index in tokens_
  std::unique_ptr<Trie> raw_trie_;             // normalized=false tokens
  std::unique_ptr<Trie> normalized_trie_;      // normalized=true tokens, normalized
  int32_t max_id_ = -1;
};

}  // namespace tandem::tokenizer_internal
