// tokenizer.json "model" of type BPE: vocabulary, ranked merges (both the "a b" string form and
// the ["a", "b"] pair form), unk_token / fuse_unk, byte_fallback ("<0xNN>" tokens),
// ignore_merges, continuing_subword_prefix / end_of_word_suffix. A word is merged with a
// rank-ordered priority queue over a linked list of symbols (O(n log n)), exactly reproducing the
// HF library's order (lowest rank first, then leftmost). Results per word are cached.
// Thread safety: Tokenize may run concurrently; the cache is guarded by a mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer_json.h"

namespace tandem::tokenizer_internal {

// Transparent hashing so maps keyed by std::string accept std::string_view lookups.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // `j` is the "model" object (type "BPE" or absent).
  static absl::StatusOr<std::unique_ptr<BpeModel>> Parse(const Json& j);

  // Appends the ids of one pre-tokenized word (empty words give nothing).
  void Tokenize(std::string_view word, std::vector<int32_t>* out) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  const std::string* IdToToken(int32_t id) const;  // nullptr if unknown
  int32_t max_id() const { return max_id_; }       // -1 for an empty vocabulary
  size_t vocab_count() const { return vocab_.size(); }

 private:
  BpeModel() = default;
  void MergeWord(std::string_view word, std::vector<int32_t>* out) const;

  TokenMap vocab_;
  std::unordered_map<int32_t, std::string> vocab_r_;
  // (left id << 32 | right id) -> (rank, merged id).
  std::unordered_map<uint64_t, std::pair<uint32_t, int32_t>> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  int32_t byte_ids_[256];  // "<0xNN>" ids, -1 when absent
  int32_t max_id_ = -1;

  static constexpr size_t kCacheCapacity = 10000;
  static constexpr size_t kMaxCachedWordBytes = 256;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>
      cache_;  // guarded by cache_mu_
};

}  // namespace tandem::tokenizer_internal
