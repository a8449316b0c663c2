// Added-token recognition (see tokenizer_added_tokens.h).
#include "common/tokenizer_added_tokens.h"

#include <algorithm>

#include "common/status.h"
#include "common/tokenizer_normalizer.h"
#include "common/tokenizer_unicode.h"

namespace tandem::tokenizer_internal {

// Byte trie over token patterns for leftmost-longest matching.
struct AddedVocabulary::Trie {
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                 // index in tokens_ ending here
  };
  std::vector<Node> nodes{Node{}};

  void Insert(std::string_view pattern, int32_t token) {
    int32_t n = 0;
    for (char c : pattern) {
      uint8_t b = static_cast<uint8_t>(c);
      auto& ch = nodes[n].children;
      auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, INT32_MIN));
      if (it != ch.end() && it->first == b) {
        n = it->second;
      } else {
        int32_t next = static_cast<int32_t>(nodes.size());
        ch.insert(it, {b, next});
        nodes.emplace_back();
        n = next;
      }
    }
    if (nodes[n].token < 0) nodes[n].token = token;  // first registration wins
  }
  bool empty() const { return nodes[0].children.empty(); }

  // Longest pattern starting at text[pos]: sets *len and returns its token, or -1.
  int32_t LongestAt(std::string_view text, size_t pos, size_t* len) const {
    int32_t n = 0, best = -1;
    for (size_t i = pos; i < text.size(); ++i) {
      const auto& ch = nodes[n].children;
      uint8_t b = static_cast<uint8_t>(text[i]);
      auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, INT32_MIN));
      if (it == ch.end() || it->first != b) break;
      n = it->second;
      if (nodes[n].token >= 0) {
        best = nodes[n].token;
        *len = i + 1 - pos;
      }
    }
    return best;
  }
};

namespace {

// Code point ending at byte `end` of s (valid UTF-8), or -1 at the start.
int32_t CharBefore(std::string_view s, size_t end) {
  if (end == 0) return -1;
  size_t start = end - 1;
  while (start > 0 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
  size_t len;
  return DecodeUtf8(s, start, &len);
}

int32_t CharAt(std::string_view s, size_t pos) {
  if (pos >= s.size()) return -1;
  size_t len;
  return DecodeUtf8(s, pos, &len);
}

}  // namespace

AddedVocabulary::~AddedVocabulary() = default;

absl::StatusOr<std::unique_ptr<AddedVocabulary>> AddedVocabulary::Parse(
    const Json* j, const BpeModel& model, const Normalizer* normalizer) {
  std::unique_ptr<AddedVocabulary> v(new AddedVocabulary());
  v->raw_trie_ = std::make_unique<Trie>();
  v->normalized_trie_ = std::make_unique<Trie>();
  if (j == nullptr) return v;
  if (!j->is_array()) return JsonError("added_tokens", "must be an array");
  for (size_t i = 0; i < j->size(); ++i) {
    const Json& e = (*j)[i];
    const std::string where = Cat("added_tokens[", i, "]");
    if (!e.is_object()) return JsonError(where, "must be an object");
    AddedToken t;
    TANDEM_ASSIGN_OR_RETURN(t.content, GetString(e, "content", where));
    const Json* id = FindField(e, "id");
    if (id == nullptr || !id->is_number_integer() || id->get<int64_t>() < 0 ||
        id->get<int64_t>() > INT32_MAX) {
      return JsonError(where, "field 'id' must be a non-negative integer");
    }
    t.id = static_cast<int32_t>(id->get<int64_t>());
    TANDEM_ASSIGN_OR_RETURN(t.special, GetBool(e, "special", where, false));
    TANDEM_ASSIGN_OR_RETURN(t.single_word, GetBool(e, "single_word", where, false));
    TANDEM_ASSIGN_OR_RETURN(t.lstrip, GetBool(e, "lstrip", where, false));
    TANDEM_ASSIGN_OR_RETURN(t.rstrip, GetBool(e, "rstrip", where, false));
    TANDEM_ASSIGN_OR_RETURN(t.normalized, GetBool(e, "normalized", where, !t.special));
    if (!IsValidUtf8(t.content)) return JsonError(where, "content is not valid UTF-8");
    if (t.content.empty() || v->by_content_.count(t.content) != 0) continue;
    // Ids as the HF library assigns them on load (the file's "id" is only checked there): the
    // model's id when the content is in its vocabulary, else the next id after the vocabulary
    // and the added tokens so far.
    if (auto model_id = model.TokenToId(t.content)) {
      t.id = *model_id;
    } else {
      const int64_t vocab_count = static_cast<int64_t>(model.vocab_count());
      t.id = (v->tokens_.empty())                              ? vocab_count
             : (v->max_id_ >= vocab_count || vocab_count == 0) ? v->max_id_ + 1
                                                               : vocab_count;
    }
    t.decoded = t.content;
    if (t.normalized && normalizer != nullptr) normalizer->Normalize(&t.decoded);
    size_t index = v->tokens_.size();
    v->by_content_[t.content] = static_cast<int32_t>(index);
    v->by_id_[t.id] = index;
    v->max_id_ = std::max(v->max_id_, t.id);
    v->tokens_.push_back(std::move(t));
  }
  // The HF library registers special tokens before the others; with leftmost-longest matching
  // the order only matters for identical patterns.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < v->tokens_.size(); ++i) {
      const AddedToken& t = v->tokens_[i];
      if (t.special != (pass == 0)) continue;
      if (!t.normalized) {
        v->raw_trie_->Insert(t.content, static_cast<int32_t>(i));
      } else if (!t.decoded.empty()) {
        v->normalized_trie_->Insert(t.decoded, static_cast<int32_t>(i));
      }
    }
  }
  return v;
}

void AddedVocabulary::SplitPieces(const Trie& trie, std::vector<Piece>* pieces) const {
  std::vector<Piece> out;
  for (Piece& piece : *pieces) {
    const std::string& s = piece.text;
    if (piece.id >= 0 || trie.empty()) {
      if (!s.empty()) out.push_back(std::move(piece));
      continue;
    }
    // Non-overlapping leftmost-longest matches first; filters may then discard some.
    std::vector<std::tuple<size_t, size_t, int32_t>> matches;
    for (size_t pos = 0; pos < s.size();) {
      size_t len = 0;
      int32_t t = trie.LongestAt(s, pos, &len);
      if (t >= 0) {
        matches.emplace_back(pos, pos + len, t);
        pos += len;
      } else {
        ++pos;
      }
    }
    size_t start_offset = 0;
    auto emit = [&](size_t b, size_t e, int32_t id) {
      if (b < e) out.push_back(Piece{s.substr(b, e - b), piece.at_start && b == 0, id});
    };
    for (auto [start, stop, index] : matches) {
      const AddedToken& tok = tokens_[index];
      if (tok.single_word) {
        int32_t before = CharBefore(s, start), after = CharAt(s, stop);
        bool start_space = before < 0 || !IsWordChar(before);
        bool stop_space = after < 0 || !IsWordChar(after);
        if (!start_space || !stop_space) continue;
      }
      if (tok.lstrip) {
        size_t new_start = start;
        while (new_start > 0) {
          int32_t c = CharBefore(s, new_start);
          if (c < 0 || !IsWhitespace(c)) break;
          size_t p = new_start - 1;
          while (p > 0 && (static_cast<uint8_t>(s[p]) & 0xC0) == 0x80) --p;
          new_start = p;
        }
        start = std::max(new_start, start_offset);
      }
      if (tok.rstrip) {
        while (stop < s.size()) {
          int32_t c = CharAt(s, stop);
          if (c < 0 || !IsWhitespace(c)) break;
          stop += Utf8CharLen(s, stop);
        }
      }
      // The previous token's rstrip may have eaten into this match (or all of it).
      if (stop <= start_offset) continue;
      start = std::max(start, start_offset);
      emit(start_offset, start, -1);
      emit(start, stop, tok.id);
      start_offset = stop;
    }
    emit(start_offset, s.size(), -1);
  }
  *pieces = std::move(out);
}

std::vector<Piece> AddedVocabulary::Split(std::string_view text,
                                          const Normalizer* normalizer) const {
  std::vector<Piece> pieces;
  pieces.push_back(Piece{std::string(text), true, -1});
  SplitPieces(*raw_trie_, &pieces);
  if (normalizer != nullptr) {
    for (Piece& p : pieces) {
      if (p.id < 0) normalizer->Normalize(&p.text);
    }
  }
  SplitPieces(*normalized_trie_, &pieces);
  return pieces;
}

std::optional<int32_t> AddedVocabulary::TokenToId(std::string_view content) const {
  auto it = by_content_.find(content);
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

const std::string* AddedVocabulary::IdToToken(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second].decoded;
}

const std::string* AddedVocabulary::ContentOf(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second].content;
}

bool AddedVocabulary::IsSpecialContent(std::string_view content) const {
  auto it = by_content_.find(content);
  return it != by_content_.end() && tokens_[it->second].special;
}

bool AddedVocabulary::IsSpecialId(int32_t id) const {
  auto it = by_id_.find(id);
  return it != by_id_.end() && tokens_[it->second].special;
}

}  // namespace tandem::tokenizer_internal
