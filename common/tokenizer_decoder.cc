// Decoder components (see tokenizer_decoder.h).
#include "common/tokenizer_decoder.h"

#include <optional>

#include "common/status.h"
#include "common/tokenizer_byte_level.h"
#include "common/tokenizer_regex.h"
#include "common/tokenizer_unicode.h"

namespace tandem::tokenizer_internal {
namespace {

// Characters of the byte-level alphabet back to bytes; a token with any other character keeps
// its own UTF-8 bytes. The whole output is then converted lossily.
class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& t : *tokens) {
      if (!ByteLevelToBytes(t, &bytes)) bytes.append(t);
    }
    *tokens = {Utf8Lossy(bytes)};
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::optional<std::string> literal, std::unique_ptr<Regex> regex,
                 std::string content)
      : literal_(std::move(literal)), regex_(std::move(regex)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      std::vector<std::pair<size_t, size_t>> matches;
      if (literal_.has_value()) {
        if (literal_->empty()) continue;
        for (size_t p = t.find(*literal_); p != std::string::npos;
             p = t.find(*literal_, p + literal_->size())) {
          matches.emplace_back(p, p + literal_->size());
        }
      } else {
        matches = regex_->FindAll(t);
      }
      if (matches.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (auto [s, e] : matches) {
        out.append(t, prev, s - prev);
        out.append(content_);
        prev = e;
      }
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::optional<std::string> literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

// "<0xNN>" tokens become bytes; a run of them that is not valid UTF-8 becomes one U+FFFD per
// byte.
class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t byte_count = 0;
    auto flush = [&] {
      if (byte_count == 0) return;
      if (IsValidUtf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < byte_count; ++i) out.emplace_back(kReplacementUtf8);
      }
      bytes.clear();
      byte_count = 0;
    };
    for (std::string& t : *tokens) {
      if (int b = ParseByteToken(t); b >= 0) {
        bytes.push_back(static_cast<char>(b));
        ++byte_count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    *tokens = std::move(out);
  }

 private:
  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // The byte of a "<0xNN>" token (hex digits of either case, as u8::from_str_radix), or -1.
  static int ParseByteToken(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int hi = HexDigit(t[3]), lo = HexDigit(t[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const std::string& t : *tokens) all += t;
    *tokens = {std::move(all)};
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    const size_t n = content_.size();
    for (std::string& t : *tokens) {
      size_t begin = 0, end = t.size();
      for (size_t i = 0; i < start_ && end - begin >= n && t.compare(begin, n, content_) == 0;
           ++i) {
        begin += n;
      }
      for (size_t i = 0; i < stop_ && end - begin >= n && t.compare(end - n, n, content_) == 0;
           ++i) {
        end -= n;
      }
      t = t.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

// The replacement character becomes a space, except in the first token when a prefix was
// prepended (there it is dropped).
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_in_first)
      : replacement_(std::move(replacement)), drop_in_first_(drop_in_first) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      std::string out;
      for (size_t p = 0; p < t.size();) {
        if (t.compare(p, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && drop_in_first_)) out.push_back(' ');
          p += replacement_.size();
        } else {
          out.push_back(t[p++]);
        }
      }
      t = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool drop_in_first_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& d : parts_) d->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

absl::StatusOr<size_t> GetCount(const Json& j, std::string_view key, std::string_view where) {
  const Json* f = FindField(j, key);
  if (f == nullptr) return 0;
  if (!f->is_number_unsigned() && !(f->is_number_integer() && f->get<int64_t>() >= 0)) {
    return JsonError(where, Cat("field '", key, "' must be a non-negative integer"));
  }
  return static_cast<size_t>(f->get<int64_t>());
}

}  // namespace

std::string Decoder::Decode(std::vector<std::string> tokens) const {
  DecodeChain(&tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const Json& j) {
  if (!j.is_object()) return JsonError("decoder", "must be an object or null");
  const std::string type = TypeOf(j);
  const std::string where = Cat("decoder.", type);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Regex> re, GetPattern(j, "pattern", where));
    TANDEM_ASSIGN_OR_RETURN(std::string content, GetString(j, "content", where));
    return std::make_unique<ReplaceDecoder>(LiteralPattern(j, "pattern"), std::move(re),
                                            std::move(content));
  }
  if (type == "Strip") {
    TANDEM_ASSIGN_OR_RETURN(std::string content, GetChar(j, "content", where));
    TANDEM_ASSIGN_OR_RETURN(size_t start, GetCount(j, "start", where));
    TANDEM_ASSIGN_OR_RETURN(size_t stop, GetCount(j, "stop", where));
    return std::make_unique<StripDecoder>(std::move(content), start, stop);
  }
  if (type == "Metaspace") {
    TANDEM_ASSIGN_OR_RETURN(std::string replacement, GetChar(j, "replacement", where));
    bool prepend = true;
    if (const Json* s = FindField(j, "prepend_scheme"); s != nullptr && s->is_string()) {
      prepend = s->get<std::string>() != "never";
    }
    TANDEM_ASSIGN_OR_RETURN(bool add_prefix_space, GetBool(j, "add_prefix_space", where, true));
    if (!add_prefix_space) prepend = false;
    return std::make_unique<MetaspaceDecoder>(std::move(replacement), prepend);
  }
  if (type == "Sequence") {
    const Json* list = FindField(j, "decoders");
    if (list == nullptr || !list->is_array()) {
      return JsonError(where, "field 'decoders' must be an array");
    }
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const Json& item : *list) {
      TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Decoder> d, ParseDecoder(item));
      parts.push_back(std::move(d));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type.empty()) return JsonError("decoder", "missing field 'type'");
  return absl::UnimplementedError(Cat("unsupported decoder '", type, "'"));
}

}  // namespace tandem::tokenizer_internal
