// Unicode helpers for the tokenizer: UTF-8 decoding with Rust's error semantics, lossy
// conversion (U+FFFD per maximal invalid subpart, as Rust's String::from_utf8_lossy), Rust's
// char::is_whitespace and regex \w, and NFC / NFD normalization (Unicode 15 tables in
// tokenizer_unicode_data.cc). Pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::tokenizer_internal {

inline constexpr char32_t kReplacementChar = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// Decodes the code point at s[pos]. On success returns it and sets *len to its byte length. On an
// invalid sequence returns -1 and sets *len to the length of the maximal invalid subpart (>= 1),
// the unit Rust's lossy conversion replaces by one U+FFFD.
int32_t DecodeUtf8(std::string_view s, size_t pos, size_t* len);
// Length of the valid UTF-8 character starting at s[pos] (1 if invalid). For valid input.
size_t Utf8CharLen(std::string_view s, size_t pos);
void AppendUtf8(char32_t cp, std::string* out);
bool IsValidUtf8(std::string_view s);
// Rust String::from_utf8_lossy.
std::string Utf8Lossy(std::string_view s);

// Rust char::is_whitespace (Unicode White_Space).
bool IsWhitespace(char32_t c);
// Rust regex's \w (Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control),
// which the HF library uses to decide whether an added token touches a word; via PCRE2's tables.
bool IsWordChar(char32_t c);

// Unicode normalization forms C and D of valid UTF-8 text.
std::string NormalizeNfc(std::string_view s);
std::string NormalizeNfd(std::string_view s);

// Table layout of tokenizer_unicode_data.cc.
struct CccRange {
  uint32_t first, last, ccc;
};
struct Decomposition {
  uint32_t cp, first, second, composes;
};
extern const CccRange kCccRanges[];
extern const size_t kCccRangesSize;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionsSize;

}  // namespace tandem::tokenizer_internal
