// Normalizer components (see tokenizer_normalizer.h).
#include "common/tokenizer_normalizer.h"

#include <vector>

#include "common/status.h"
#include "common/tokenizer_regex.h"
#include "common/tokenizer_unicode.h"

namespace tandem::tokenizer_internal {
namespace {

class NfcNormalizer : public Normalizer {
 public:
  void Normalize(std::string* s) const override { *s = NormalizeNfc(*s); }
};

class NfdNormalizer : public Normalizer {
 public:
  void Normalize(std::string* s) const override { *s = NormalizeNfd(*s); }
};

// Prepends a string to non-empty text.
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  void Normalize(std::string* s) const override {
    if (!s->empty()) s->insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

// Replaces every non-overlapping match, left to right.
class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::optional<std::string> literal, std::unique_ptr<Regex> regex,
                    std::string content)
      : literal_(std::move(literal)), regex_(std::move(regex)), content_(std::move(content)) {}

  void Normalize(std::string* s) const override {
    std::string out;
    size_t prev = 0;
    if (literal_.has_value()) {
      if (literal_->empty()) return;
      for (size_t pos = s->find(*literal_); pos != std::string::npos;
           pos = s->find(*literal_, prev)) {
        out.append(*s, prev, pos - prev);
        out.append(content_);
        prev = pos + literal_->size();
      }
    } else {
      for (auto [start, end] : regex_->FindAll(*s)) {
        out.append(*s, prev, start - prev);
        out.append(content_);
        prev = end;
      }
    }
    if (prev == 0 && out.empty()) return;
    out.append(*s, prev, std::string::npos);
    *s = std::move(out);
  }

 private:
  std::optional<std::string> literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

// Strips Unicode whitespace on the left and/or right.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string* s) const override {
    size_t begin = 0, end = s->size();
    if (left_) {
      while (begin < end) {
        size_t len;
        int32_t cp = DecodeUtf8(*s, begin, &len);
        if (cp < 0 || !IsWhitespace(cp)) break;
        begin += len;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>((*s)[start]) & 0xC0) == 0x80) --start;
        size_t len;
        int32_t cp = DecodeUtf8(*s, start, &len);
        if (cp < 0 || !IsWhitespace(cp)) break;
        end = start;
      }
    }
    *s = s->substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void Normalize(std::string* s) const override {
    for (const auto& p : parts_) p->Normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const Json& j) {
  if (!j.is_object()) return JsonError("normalizer", "must be an object or null");
  const std::string type = TypeOf(j);
  const std::string where = Cat("normalizer.", type);
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "NFD") return std::make_unique<NfdNormalizer>();
  if (type == "Prepend") {
    TANDEM_ASSIGN_OR_RETURN(std::string prepend, GetString(j, "prepend", where));
    return std::make_unique<PrependNormalizer>(std::move(prepend));
  }
  if (type == "Replace") {
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Regex> re, GetPattern(j, "pattern", where));
    TANDEM_ASSIGN_OR_RETURN(std::string content, GetString(j, "content", where));
    return std::make_unique<ReplaceNormalizer>(LiteralPattern(j, "pattern"), std::move(re),
                                               std::move(content));
  }
  if (type == "Strip") {
    TANDEM_ASSIGN_OR_RETURN(bool left, GetBool(j, "strip_left", where, true));
    TANDEM_ASSIGN_OR_RETURN(bool right, GetBool(j, "strip_right", where, true));
    return std::make_unique<StripNormalizer>(left, right);
  }
  if (type == "Sequence") {
    const Json* list = FindField(j, "normalizers");
    if (list == nullptr || !list->is_array()) {
      return JsonError(where, "field 'normalizers' must be an array");
    }
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const Json& item : *list) {
      if (item.is_null()) continue;
      TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Normalizer> n, ParseNormalizer(item));
      parts.push_back(std::move(n));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type.empty()) return JsonError("normalizer", "missing field 'type'");
  return absl::UnimplementedError(Cat("unsupported normalizer '", type, "'"));
}

}  // namespace tandem::tokenizer_internal
