// GPT-2 byte <-> character tables (see tokenizer_byte_level.h).
#include "common/tokenizer_byte_level.h"

#include <array>

#include "common/tokenizer_unicode.h"

namespace tandem::tokenizer_internal {
namespace {

struct Tables {
  std::array<char32_t, 256> byte_to_char;
  std::array<std::string, 256> byte_to_utf8;
  std::array<int16_t, 0x144> char_to_byte;  // characters used are all below U+0144
  Tables() {
    char_to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_char[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      char_to_byte[byte_to_char[b]] = static_cast<int16_t>(b);
      AppendUtf8(byte_to_char[b], &byte_to_utf8[b]);
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

}  // namespace

char32_t ByteToChar(uint8_t b) { return GetTables().byte_to_char[b]; }

void BytesToByteLevel(std::string_view bytes, std::string* out) {
  const Tables& t = GetTables();
  for (char c : bytes) out->append(t.byte_to_utf8[static_cast<uint8_t>(c)]);
}

bool ByteLevelToBytes(std::string_view token, std::string* out) {
  const Tables& t = GetTables();
  std::string bytes;
  bytes.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    size_t len;
    int32_t cp = DecodeUtf8(token, i, &len);
    if (cp < 0 || cp >= static_cast<int32_t>(t.char_to_byte.size()) || t.char_to_byte[cp] < 0) {
      return false;
    }
    bytes.push_back(static_cast<char>(t.char_to_byte[cp]));
    i += len;
  }
  out->append(bytes);
  return true;
}

}  // namespace tandem::tokenizer_internal
