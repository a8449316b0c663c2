// UTF-8 handling, character classes and NFC / NFD for the tokenizer (see tokenizer_unicode.h).
#include "common/tokenizer_unicode.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "common/tokenizer_regex.h"

namespace tandem::tokenizer_internal {
namespace {

inline bool IsCont(unsigned char b) { return (b & 0xC0) == 0x80; }

// Hangul syllable composition constants (Unicode chapter 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

uint32_t Ccc(char32_t c) {
  if (c < 0x300) return 0;
  const CccRange* end = kCccRanges + kCccRangesSize;
  const CccRange* it = std::upper_bound(kCccRanges, end, c,
                                        [](char32_t v, const CccRange& r) { return v < r.first; });
  if (it == kCccRanges) return 0;
  --it;
  return c <= it->last ? it->ccc : 0;
}

const Decomposition* FindDecomposition(char32_t c) {
  const Decomposition* end = kDecompositions + kDecompositionsSize;
  const Decomposition* it = std::lower_bound(
      kDecompositions, end, c, [](const Decomposition& d, char32_t v) { return d.cp < v; });
  return (it != end && it->cp == c) ? it : nullptr;
}

void Decompose(char32_t c, std::vector<char32_t>* out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    char32_t s = c - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition* d = FindDecomposition(c);
  if (d == nullptr) {
    out->push_back(c);
    return;
  }
  Decompose(d->first, out);
  if (d->second != 0) Decompose(d->second, out);
}

// Canonical decomposition followed by the canonical ordering algorithm.
std::vector<char32_t> DecomposeString(std::string_view s) {
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t len;
    int32_t cp = DecodeUtf8(s, i, &len);
    Decompose(cp < 0 ? kReplacementChar : static_cast<char32_t>(cp), &cps);
    i += len;
  }
  // Stable sort every run of non-starters by combining class.
  for (size_t i = 0; i < cps.size();) {
    if (Ccc(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && Ccc(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](char32_t a, char32_t b) { return Ccc(a) < Ccc(b); });
    i = j;
  }
  return cps;
}

const std::unordered_map<uint64_t, char32_t>& CompositionMap() {
  static const auto* map = [] {
    auto* m = new std::unordered_map<uint64_t, char32_t>();
    for (size_t i = 0; i < kDecompositionsSize; ++i) {
      const Decomposition& d = kDecompositions[i];
      if (d.composes) (*m)[(static_cast<uint64_t>(d.first) << 32) | d.second] = d.cp;
    }
    return m;
  }();
  return *map;
}

// Primary composite of (a, b), or 0.
char32_t Compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto& map = CompositionMap();
  auto it = map.find((static_cast<uint64_t>(a) << 32) | b);
  return it == map.end() ? 0 : it->second;
}

// True when no code point of s can be changed by NFC / NFD: everything below U+0300 is NFC and
// NFD stable (no decompositions, combining class 0) except U+00C0..U+02FF for NFD.
bool AllBelow(std::string_view s, unsigned char max_lead) {
  for (unsigned char b : s) {
    if (b >= max_lead) return false;
  }
  return true;
}

}  // namespace

int32_t DecodeUtf8(std::string_view s, size_t pos, size_t* len) {
  const size_t n = s.size();
  auto at = [&](size_t i) -> unsigned char { return static_cast<unsigned char>(s[i]); };
  unsigned char b0 = at(pos);
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (pos + 1 < n && IsCont(at(pos + 1))) {
      *len = 2;
      return ((b0 & 0x1F) << 6) | (at(pos + 1) & 0x3F);
    }
    *len = 1;
    return -1;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (pos + 1 >= n) {
      *len = 1;
      return -1;
    }
    unsigned char b1 = at(pos + 1);
    bool ok = (b0 == 0xE0)   ? (b1 >= 0xA0 && b1 <= 0xBF)
              : (b0 == 0xED) ? (b1 >= 0x80 && b1 <= 0x9F)
                             : IsCont(b1);
    if (!ok) {
      *len = 1;
      return -1;
    }
    if (pos + 2 >= n || !IsCont(at(pos + 2))) {
      *len = 2;
      return -1;
    }
    *len = 3;
    return ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (at(pos + 2) & 0x3F);
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (pos + 1 >= n) {
      *len = 1;
      return -1;
    }
    unsigned char b1 = at(pos + 1);
    bool ok = (b0 == 0xF0)   ? (b1 >= 0x90 && b1 <= 0xBF)
              : (b0 == 0xF4) ? (b1 >= 0x80 && b1 <= 0x8F)
                             : IsCont(b1);
    if (!ok) {
      *len = 1;
      return -1;
    }
    if (pos + 2 >= n || !IsCont(at(pos + 2))) {
      *len = 2;
      return -1;
    }
    if (pos + 3 >= n || !IsCont(at(pos + 3))) {
      *len = 3;
      return -1;
    }
    *len = 4;
    return ((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((at(pos + 2) & 0x3F) << 6) |
           (at(pos + 3) & 0x3F);
  }
  *len = 1;
  return -1;
}

size_t Utf8CharLen(std::string_view s, size_t pos) {
  size_t len;
  DecodeUtf8(s, pos, &len);
  return len;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    if (DecodeUtf8(s, i, &len) < 0) return false;
    i += len;
  }
  return true;
}

std::string Utf8Lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t len;
    if (DecodeUtf8(s, i, &len) < 0) {
      out.append(kReplacementUtf8);
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  return out;
}

bool IsWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool IsWordChar(char32_t c) {
  if (c < 0x80) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  }
  static const Regex* re = [] {
    auto r = Regex::Compile("^[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]");
    return r.ok() ? r->release() : nullptr;
  }();
  if (re == nullptr) return false;
  std::string ch;
  AppendUtf8(c, &ch);
  return !re->FindAll(ch).empty();
}

std::string NormalizeNfd(std::string_view s) {
  if (AllBelow(s, 0xC3)) return std::string(s);  // below U+00C0
  std::string out;
  out.reserve(s.size());
  for (char32_t c : DecomposeString(s)) AppendUtf8(c, &out);
  return out;
}

std::string NormalizeNfc(std::string_view s) {
  if (AllBelow(s, 0xCC)) return std::string(s);  // below U+0300
  std::vector<char32_t> cps = DecomposeString(s);
  std::vector<char32_t> res;
  res.reserve(cps.size());
  ptrdiff_t starter = -1;  // index in res of the last starter, if composition may still apply
  uint32_t last_ccc = 0;   // class of the last character appended to res
  for (char32_t c : cps) {
    uint32_t ccc = Ccc(c);
    if (starter >= 0) {
      bool adjacent = static_cast<ptrdiff_t>(res.size()) - 1 == starter;
      if (adjacent || (last_ccc != 0 && last_ccc < ccc)) {
        if (char32_t comp = Compose(res[starter], c); comp != 0) {
          res[starter] = comp;
          continue;
        }
      }
    }
    if (ccc == 0) starter = static_cast<ptrdiff_t>(res.size());
    res.push_back(c);
    last_ccc = ccc;
  }
  std::string out;
  out.reserve(s.size());
  for (char32_t c : res) AppendUtf8(c, &out);
  return out;
}

}  // namespace tandem::tokenizer_internal
