// Pre-tokenizer components (see tokenizer_pre_tokenizer.h). Splitting follows the HF library's
// NormalizedString::split: the pattern yields a cover of the text by matched and unmatched spans,
// and the behavior decides which spans are kept and how matched spans join their neighbours.
#include "common/tokenizer_pre_tokenizer.h"

#include <functional>
#include <utility>

#include "common/status.h"
#include "common/tokenizer_byte_level.h"
#include "common/tokenizer_regex.h"

namespace tandem::tokenizer_internal {
namespace {

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t start, end;
  bool is_match;
};

// The spans of `text` covered by `matches` and the gaps between them, in order.
std::vector<Span> CoverSpans(const std::vector<std::pair<size_t, size_t>>& matches,
                             size_t text_size, bool invert) {
  std::vector<Span> spans;
  if (text_size == 0) return {{0, 0, invert}};
  size_t prev = 0;
  for (auto [s, e] : matches) {
    if (prev != s) spans.push_back({prev, s, invert});
    spans.push_back({s, e, !invert});
    prev = e;
  }
  if (prev != text_size) spans.push_back({prev, text_size, invert});
  return spans;
}

// Applies `behavior` to the spans of one piece and appends the resulting non-empty pieces.
void EmitSplits(const Piece& piece, const std::vector<Span>& spans, Behavior behavior,
                std::vector<Piece>* out) {
  std::vector<std::pair<size_t, size_t>> keep;
  switch (behavior) {
    case Behavior::kIsolated:
      for (const Span& s : spans) keep.emplace_back(s.start, s.end);
      break;
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) keep.emplace_back(s.start, s.end);
      }
      break;
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !keep.empty()) {
          keep.back().second = s.end;
        } else {
          keep.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !keep.empty()) {
          keep.back().first = it->start;
        } else {
          keep.emplace_back(it->start, it->end);
        }
        previous_match = it->is_match;
      }
      std::reverse(keep.begin(), keep.end());
      break;
    }
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !keep.empty()) {
          keep.back().second = s.end;
        } else {
          keep.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
  }
  for (auto [s, e] : keep) {
    if (s >= e) continue;
    out->push_back(Piece{piece.text.substr(s, e - s), piece.at_start && s == 0, -1});
  }
}

// Replaces every non-token piece by the pieces `fn` makes of it.
void ForEachFreePiece(std::vector<Piece>* pieces,
                      const std::function<void(Piece&, std::vector<Piece>*)>& fn) {
  std::vector<Piece> out;
  out.reserve(pieces->size());
  for (Piece& p : *pieces) {
    if (p.id >= 0) {
      out.push_back(std::move(p));
    } else {
      fn(p, &out);
    }
  }
  *pieces = std::move(out);
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> re, Behavior behavior, bool invert)
      : re_(std::move(re)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    ForEachFreePiece(pieces, [&](Piece& p, std::vector<Piece>* out) {
      EmitSplits(p, CoverSpans(re_->FindAll(p.text), p.text.size(), invert_), behavior_, out);
    });
  }

 private:
  std::unique_ptr<Regex> re_;
  Behavior behavior_;
  bool invert_;
};

constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> re)
      : add_prefix_space_(add_prefix_space), re_(std::move(re)) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    ForEachFreePiece(pieces, [&](Piece& p, std::vector<Piece>* out) {
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text = " " + p.text;
      size_t first = out->size();
      if (re_ != nullptr) {
        EmitSplits(p, CoverSpans(re_->FindAll(p.text), p.text.size(), false), Behavior::kIsolated,
                   out);
      } else if (!p.text.empty()) {
        out->push_back(std::move(p));
      }
      for (size_t i = first; i < out->size(); ++i) {
        std::string mapped;
        BytesToByteLevel((*out)[i].text, &mapped);
        (*out)[i].text = std::move(mapped);
      }
    });
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;  // GPT-2's pattern when use_regex, else null
};

enum class PrependScheme { kFirst, kAlways, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split,
                        std::unique_ptr<Regex> re)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split), re_(std::move(re)) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    ForEachFreePiece(pieces, [&](Piece& p, std::vector<Piece>* out) {
      std::string text;
      for (char c : p.text) {
        if (c == ' ') {
          text += replacement_;
        } else {
          text.push_back(c);
        }
      }
      bool starts = text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts &&
          (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && p.at_start))) {
        text = replacement_ + text;
      }
      p.text = std::move(text);
      if (split_) {
        EmitSplits(p, CoverSpans(re_->FindAll(p.text), p.text.size(), false),
                   Behavior::kMergedWithNext, out);
      } else if (!p.text.empty()) {
        out->push_back(std::move(p));
      }
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  std::unique_ptr<Regex> re_;  // the replacement character, literally
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    for (const auto& p : parts_) p->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

absl::StatusOr<Behavior> ParseBehavior(const Json& j, std::string_view where) {
  TANDEM_ASSIGN_OR_RETURN(std::string b, GetString(j, "behavior", where));
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  return JsonError(where, Cat("unknown behavior '", b, "'"));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseMetaspace(const Json& j,
                                                             std::string_view where) {
  TANDEM_ASSIGN_OR_RETURN(std::string replacement, GetChar(j, "replacement", where));
  TANDEM_ASSIGN_OR_RETURN(bool split, GetBool(j, "split", where, true));
  PrependScheme scheme = PrependScheme::kAlways;
  if (const Json* s = FindField(j, "prepend_scheme"); s != nullptr) {
    std::string v = s->is_string() ? s->get<std::string>() : "";
    if (v == "first") {
      scheme = PrependScheme::kFirst;
    } else if (v == "always") {
      scheme = PrependScheme::kAlways;
    } else if (v == "never") {
      scheme = PrependScheme::kNever;
    } else {
      return JsonError(where, "prepend_scheme must be \"first\", \"always\" or \"never\"");
    }
  }
  // Legacy field: add_prefix_space=false means never.
  TANDEM_ASSIGN_OR_RETURN(bool add_prefix_space, GetBool(j, "add_prefix_space", where, true));
  if (!add_prefix_space) scheme = PrependScheme::kNever;
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Regex> re, Regex::Literal(replacement));
  return std::make_unique<MetaspacePreTokenizer>(std::move(replacement), scheme, split,
                                                 std::move(re));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const Json& j) {
  if (!j.is_object()) return JsonError("pre_tokenizer", "must be an object or null");
  const std::string type = TypeOf(j);
  const std::string where = Cat("pre_tokenizer.", type);
  if (type == "ByteLevel") {
    TANDEM_ASSIGN_OR_RETURN(bool add_prefix_space, GetBool(j, "add_prefix_space", where, true));
    TANDEM_ASSIGN_OR_RETURN(bool use_regex, GetBool(j, "use_regex", where, true));
    std::unique_ptr<Regex> re;
    if (use_regex) {
      TANDEM_ASSIGN_OR_RETURN(re, Regex::Compile(kGpt2Pattern));
    }
    return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, std::move(re));
  }
  if (type == "Split") {
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Regex> re, GetPattern(j, "pattern", where));
    TANDEM_ASSIGN_OR_RETURN(Behavior behavior, ParseBehavior(j, where));
    TANDEM_ASSIGN_OR_RETURN(bool invert, GetBool(j, "invert", where, false));
    return std::make_unique<SplitPreTokenizer>(std::move(re), behavior, invert);
  }
  if (type == "Metaspace") return ParseMetaspace(j, where);
  if (type == "Digits") {
    TANDEM_ASSIGN_OR_RETURN(bool individual, GetBool(j, "individual_digits", where, false));
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Regex> re,
                            Regex::Compile(individual ? "\\p{N}" : "\\p{N}+"));
    return std::make_unique<SplitPreTokenizer>(std::move(re), Behavior::kIsolated, false);
  }
  if (type == "Sequence") {
    const Json* list = FindField(j, "pretokenizers");
    if (list == nullptr || !list->is_array()) {
      return JsonError(where, "field 'pretokenizers' must be an array");
    }
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const Json& item : *list) {
      TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<PreTokenizer> p, ParsePreTokenizer(item));
      parts.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type.empty()) return JsonError("pre_tokenizer", "missing field 'type'");
  return absl::UnimplementedError(Cat("unsupported pre_tokenizer '", type, "'"));
}

}  // namespace tandem::tokenizer_internal
