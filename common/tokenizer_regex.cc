// PCRE2 wrapper for tokenizer patterns (see tokenizer_regex.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "common/tokenizer_regex.h"

#include <pcre2.h>

#include "common/tokenizer_json.h"
#include "common/tokenizer_unicode.h"

namespace tandem::tokenizer_internal {
namespace {

// Per-thread match context whose JIT stack may grow to 4 MiB (the default 32 KiB machine stack
// is too small for some patterns on long inputs).
struct ThreadMatchContext {
  pcre2_match_context* ctx = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ThreadMatchContext() {
    ctx = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (ctx != nullptr && stack != nullptr) pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~ThreadMatchContext() {
    if (stack != nullptr) pcre2_jit_stack_free(stack);
    if (ctx != nullptr) pcre2_match_context_free(ctx);
  }
};

pcre2_match_context* MatchContext() {
  thread_local ThreadMatchContext tmc;
  return tmc.ctx;
}

// Unicode White_Space, which is what \s means in Oniguruma (the HF library's engine). PCRE2's
// UCP \s additionally matches U+180E (it follows \h), so patterns are rewritten to use this
// explicit set instead.
constexpr char kWhiteSpaceSet[] =
    "\\t\\n\\x0B\\f\\r\\x20\\x85\\xA0\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

// Replaces \s (inside and outside classes) and \S (outside classes) by kWhiteSpaceSet.
// Understands escapes, \Q...\E quoting, character classes and POSIX [:name:] items, which is
// all that is needed to tell where a backslash-s is.
std::string OnigWhitespace(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size();) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char d = p[i + 1];
      if (d == 's') {
        out += in_class ? std::string(kWhiteSpaceSet) : Cat("[", kWhiteSpaceSet, "]");
      } else if (d == 'S' && !in_class) {
        out += Cat("[^", kWhiteSpaceSet, "]");
      } else if (d == 'Q') {
        size_t end = p.find("\\E", i + 2);
        if (end == std::string_view::npos) end = p.size();
        out.append(p.substr(i, std::min(end + 2, p.size()) - i));
        i = std::min(end + 2, p.size());
        continue;
      } else {
        out.append(p.substr(i, 2));
      }
      i += 2;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      ++i;
      if (i < p.size() && p[i] == '^') out.push_back(p[i++]);
      if (i < p.size() && p[i] == ']') out.push_back(p[i++]);  // a leading ']' is literal
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      size_t end = p.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out.append(p.substr(i, end + 2 - i));
        i = end + 2;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
    ++i;
  }
  return out;
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* md) const { pcre2_match_data_free(md); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  const std::string rewritten = OnigWhitespace(pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(error_code, buf, sizeof buf);
    return absl::InvalidArgumentError(Cat("invalid regex '", pattern,
                                          "': ", reinterpret_cast<const char*>(buf), " at offset ",
                                          error_offset,
                                          rewritten == pattern ? ""
                                                               : " (of the form "
                                                                 "with \\s spelled out)"));
  }
  // JIT is an optimization only: when unavailable pcre2_match interprets.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return std::unique_ptr<Regex>(new Regex(code));
}

absl::StatusOr<std::unique_ptr<Regex>> Regex::Literal(std::string_view literal) {
  std::string escaped;
  for (char c : literal) {
    unsigned char u = static_cast<unsigned char>(c);
    bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (u < 0x80 && !alnum) {
      if (c == '\0') {
        escaped += "\\x{0}";
        continue;
      }
      escaped.push_back('\\');
    }
    escaped.push_back(c);
  }
  return Compile(escaped);
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::FindAll(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  if (!IsValidUtf8(text)) return matches;  // callers pass valid UTF-8; never hand PCRE2 garbage
  auto* code = static_cast<pcre2_code*>(code_);
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(
      pcre2_match_data_create_from_pattern(code, nullptr));
  if (md == nullptr) return matches;
  pcre2_match_context* mctx = MatchContext();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t last_end = 0;
  bool have_last_match = false;
  size_t last_match_end = 0;
  while (last_end <= text.size()) {
    int rc = pcre2_match(code, subject, text.size(), last_end, PCRE2_NO_UTF_CHECK, md.get(), mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code, subject, text.size(), last_end, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                       md.get(), mctx);
    }
    if (rc < 0) break;  // no match (or a resource limit): the rest stays unmatched
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    size_t s = ov[0], e = ov[1];
    if (e < s) break;  // \K tricks; not used by tokenizer patterns
    if (s == e && have_last_match && last_match_end == e) {
      last_end += last_end < text.size() ? Utf8CharLen(text, last_end) : 1;
      continue;
    }
    last_end = e;
    have_last_match = true;
    last_match_end = e;
    matches.emplace_back(s, e);
  }
  return matches;
}

}  // namespace tandem::tokenizer_internal
