// BPE model (see tokenizer_bpe.h). Mirrors tokenizers' models/bpe: symbols start as one per
// character (with byte fallback / unk handling), then the best-ranked adjacent pair is merged
// repeatedly; stale queue entries are recognized and skipped.
#include "common/tokenizer_bpe.h"

#include <cstdio>
#include <queue>

#include "common/status.h"
#include "common/tokenizer_unicode.h"

namespace tandem::tokenizer_internal {
namespace {

constexpr std::string_view kWhere = "model.BPE";

inline uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

struct Candidate {
  uint32_t rank;
  int32_t pos;
  int32_t new_id;
  // priority_queue pops the largest: make "largest" = lowest rank, then leftmost position.
  bool operator<(const Candidate& o) const {
    if (rank != o.rank) return rank > o.rank;
    return pos > o.pos;
  }
};

absl::StatusOr<std::pair<std::string, std::string>> ParseMerge(const Json& m, size_t index) {
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    size_t sp = s.find(' ');
    if (sp == std::string::npos) {
      return JsonError(kWhere, Cat("merge #", index, " '", s, "' has no space"));
    }
    return std::make_pair(s.substr(0, sp), s.substr(sp + 1));
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return std::make_pair(m[0].get<std::string>(), m[1].get<std::string>());
  }
  return JsonError(kWhere, Cat("merge #", index, " must be \"a b\" or [\"a\", \"b\"]"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Parse(const Json& j) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  const Json* vocab = FindField(j, "vocab");
  if (vocab == nullptr || !vocab->is_object()) {
    return JsonError(kWhere, "field 'vocab' must be an object of token -> id");
  }
  m->vocab_.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const Json& v = it.value();
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
      return JsonError(kWhere,
                       Cat("vocab entry '", it.key(), "' must map to a non-negative integer id"));
    }
    int32_t id = static_cast<int32_t>(v.get<int64_t>());
    m->vocab_[it.key()] = id;
    m->vocab_r_[id] = it.key();
    m->max_id_ = std::max(m->max_id_, id);
  }
  if (const Json* d = FindField(j, "dropout"); d != nullptr) {
    if (!d->is_number() || d->get<double>() != 0.0) {
      return absl::UnimplementedError("model.BPE: dropout is not supported");
    }
  }
  if (const Json* p = FindField(j, "continuing_subword_prefix"); p != nullptr) {
    if (!p->is_string()) return JsonError(kWhere, "continuing_subword_prefix must be a string");
    m->continuing_subword_prefix_ = p->get<std::string>();
  }
  if (const Json* p = FindField(j, "end_of_word_suffix"); p != nullptr) {
    if (!p->is_string()) return JsonError(kWhere, "end_of_word_suffix must be a string");
    m->end_of_word_suffix_ = p->get<std::string>();
  }
  if (const Json* u = FindField(j, "unk_token"); u != nullptr) {
    if (!u->is_string()) return JsonError(kWhere, "unk_token must be a string or null");
    // As in the HF library an unk_token missing from the vocabulary only matters when needed;
    // then the unknown character is dropped.
    m->unk_id_ = m->TokenToId(u->get<std::string>());
  }
  TANDEM_ASSIGN_OR_RETURN(m->fuse_unk_, GetBool(j, "fuse_unk", kWhere, false));
  TANDEM_ASSIGN_OR_RETURN(m->byte_fallback_, GetBool(j, "byte_fallback", kWhere, false));
  TANDEM_ASSIGN_OR_RETURN(m->ignore_merges_, GetBool(j, "ignore_merges", kWhere, false));
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    m->byte_ids_[b] = m->TokenToId(name).value_or(-1);
  }

  const Json* merges = FindField(j, "merges");
  if (merges != nullptr && !merges->is_array()) {
    return JsonError(kWhere, "field 'merges' must be an array");
  }
  if (merges != nullptr) {
    const size_t prefix_len = m->continuing_subword_prefix_.size();
    m->merges_.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      TANDEM_ASSIGN_OR_RETURN(auto pair, ParseMerge((*merges)[i], i));
      auto a = m->TokenToId(pair.first);
      auto b = m->TokenToId(pair.second);
      if (!a || !b || pair.second.size() < prefix_len) {
        return JsonError(kWhere, Cat("merge #", i, " uses token '", !a ? pair.first : pair.second,
                                     "' that is not in the vocabulary"));
      }
      std::string merged = pair.first + pair.second.substr(prefix_len);
      auto id = m->TokenToId(merged);
      if (!id) {
        return JsonError(
            kWhere, Cat("merge #", i, " makes token '", merged, "' that is not in the vocabulary"));
      }
      m->merges_[PairKey(*a, *b)] = {static_cast<uint32_t>(i), *id};
    }
  }
  return m;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  auto it = vocab_r_.find(id);
  return it == vocab_r_.end() ? nullptr : &it->second;
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = TokenToId(word)) {
      out->push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  MergeWord(word, &ids);
  out->insert(out->end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(word), std::move(ids));
  }
}

void BpeModel::MergeWord(std::string_view word, std::vector<int32_t>* out) const {
  std::vector<Symbol> syms;
  syms.reserve(word.size());
  auto add = [&syms](int32_t id) {
    int32_t n = static_cast<int32_t>(syms.size());
    syms.push_back(Symbol{id, n - 1, -1, true});
    if (n > 0) syms[n - 1].next = n;
  };
  // Pending unknown token id, -1 for none (fused runs of unknown characters become one).
  int32_t unk = -1;
  std::string s;
  for (size_t i = 0; i < word.size();) {
    size_t len = Utf8CharLen(word, i);
    const bool is_first = i == 0, is_last = i + len >= word.size();
    s.clear();
    if (!is_first) s += continuing_subword_prefix_;
    s.append(word.substr(i, len));
    if (is_last) s += end_of_word_suffix_;
    i += len;
    if (auto id = TokenToId(s)) {
      if (unk >= 0) add(unk);
      unk = -1;
      add(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : s) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (char c : s) add(byte_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      if (unk >= 0 && !fuse_unk_) add(unk);
      unk = *unk_id_;
    }
  }
  if (unk >= 0) add(unk);

  std::priority_queue<Candidate> queue;
  auto push_pair = [&](int32_t pos) {
    int32_t next = syms[pos].next;
    if (next < 0) return;
    auto it = merges_.find(PairKey(syms[pos].id, syms[next].id));
    if (it != merges_.end()) queue.push(Candidate{it->second.first, pos, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push_pair(i);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = syms[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = syms[left.next];
    auto it = merges_.find(PairKey(left.id, right.id));
    if (it == merges_.end() || it->second.second != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  for (const Symbol& sym : syms) {
    if (sym.alive) out->push_back(sym.id);
  }
}

}  // namespace tandem::tokenizer_internal
