// GPT-2's byte-level alphabet: every byte 0..255 is shown as a printable Unicode character
// ('!'..'~', '¡'..'¬', '®'..'ÿ' stand for themselves, the other 68 bytes become U+0100..U+0143).
// Used by the ByteLevel pre-tokenizer (bytes -> characters) and decoder (characters -> bytes).
// Pure functions over constant tables; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::tokenizer_internal {

// The character standing for byte b.
char32_t ByteToChar(uint8_t b);
// Appends the byte-level form of every byte of `bytes` (UTF-8 encoded) to *out.
void BytesToByteLevel(std::string_view bytes, std::string* out);
// If every character of `token` belongs to the alphabet, appends the bytes they stand for to
// *out and returns true; otherwise leaves *out untouched and returns false.
bool ByteLevelToBytes(std::string_view token, std::string* out);

}  // namespace tandem::tokenizer_internal
