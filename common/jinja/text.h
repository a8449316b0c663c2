// Python `str` semantics over UTF-8 std::string, for the Jinja interpreter.
//
// Contract: strings are UTF-8; lengths, indices and slices count code points like Python 3
// (invalid bytes decode to one code point each, U+FFFD-free: the raw byte is kept). Case mapping
// is ASCII-only (non-ASCII letters pass through unchanged). Whitespace is Python's str.isspace()
// set. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::jinja::text {

std::u32string Decode(std::string_view s);
std::string Encode(std::u32string_view s);
void AppendUtf8(char32_t c, std::string* out);
// Number of code points.
int64_t Length(std::string_view s);
bool IsAscii(std::string_view s);

bool IsSpace(char32_t c);  // str.isspace()

// str.strip / lstrip / rstrip; `chars` nullopt = whitespace.
std::string Strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right);
// str.split(sep, maxsplit) / str.rsplit; sep nullopt = runs of whitespace.
std::vector<std::string> Split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit);
std::vector<std::string> RSplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit);
std::vector<std::string> SplitLines(std::string_view s, bool keepends);
// str.replace(old, new, count); count < 0 = all.
std::string Replace(std::string_view s, std::string_view old_s, std::string_view new_s,
                    int64_t count);
// str.find / rfind / count (byte offsets converted to code point offsets).
int64_t Find(std::string_view s, std::string_view sub, bool reverse);
int64_t Count(std::string_view s, std::string_view sub);

std::string Lower(std::string_view s);
std::string Upper(std::string_view s);
std::string Capitalize(std::string_view s);  // str.capitalize()
std::string PyTitle(std::string_view s);     // str.title()
std::string JinjaTitle(std::string_view s);  // jinja2's |title filter

// Python slice semantics: the indices selected by [start:stop:step] from a sequence of `length`
// items (step != 0; a missing bound is nullopt).
std::vector<int64_t> SliceIndices(int64_t length, std::optional<int64_t> start,
                                  std::optional<int64_t> stop, int64_t step);

// Python string slice on code points; a missing bound is nullopt.
std::string Slice(std::string_view s, std::optional<int64_t> start, std::optional<int64_t> stop,
                  int64_t step);
// s[i] with Python negative indexing; nullopt when out of range.
std::optional<std::string> At(std::string_view s, int64_t index);

}  // namespace tandem::jinja::text
