// Tokenizer tests: hand-made tokenizer.json files small enough that the expected ids follow from
// the HF library's rules by hand (worked out in the comments), every error path, streaming
// decode, and a data-driven comparison with references that HF tokenizers produced for the
// fixtures in tests/fixtures/ (skipped when none exist).
#include "common/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/tokenizer_unicode.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

using Json = nlohmann::json;
using Ids = std::vector<int32_t>;

// ---------------------------------------------------------------------------------------------
// Helpers

// GPT-2's byte -> character map, written out independently of the implementation.
std::string ByteChar(int b) {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int n = 0;
    for (int i = 0; i < 256; ++i) {
      bool printable = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174);
      char32_t cp = printable ? i : 256 + n++;
      tokenizer_internal::AppendUtf8(cp, &t[i]);
    }
    return t;
  }();
  return table[b];
}

std::unique_ptr<Tokenizer> MustLoad(const Json& tok, const Json& config = Json()) {
  auto t = Tokenizer::FromJson(tok.dump(), config.is_null() ? "" : config.dump());
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

absl::Status LoadError(const std::string& tok, const std::string& config = "") {
  auto t = Tokenizer::FromJson(tok, config);
  return t.ok() ? absl::OkStatus() : t.status();
}

constexpr char kQwen2Pattern[] = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
                                 R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Byte-level BPE in Qwen2's layout. Ids 0..255 are the single bytes (id = byte value), merges
// on top (256..269), then special tokens (270..272).
constexpr int32_t kEndOfText = 270, kImStart = 271, kImEnd = 272;
Json QwenStyle(bool pair_merges) {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteChar(b)] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"},      // 256 he
      {"l", "l"},      // 257 ll
      {"he", "ll"},    // 258 hell
      {"hell", "o"},   // 259 hello
      {"Ġ", "w"},      // 260 Ġw
      {"o", "r"},      // 261 or
      {"Ġw", "or"},    // 262 Ġwor
      {"l", "d"},      // 263 ld
      {"Ġwor", "ld"},  // 264 Ġworld
      {"Ġ", "Ġ"},      // 265 ĠĠ
      {"Ċ", "Ċ"},      // 266 ĊĊ
      {"ä", "¸"},      // 267 ä¸
      {"ä¸", "Ń"},     // 268 ä¸Ń  (中 = E4 B8 AD)
      {"1", "2"},      // 269 12
  };
  Json m = Json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    if (pair_merges) {
      m.push_back(Json::array({a, b}));
    } else {
      m.push_back(a + " " + b);
    }
  }
  Json added = Json::array();
  int sid = kEndOfText;
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    added.push_back({{"id", sid++},
                     {"content", s},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", kQwen2Pattern}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"},
           {"add_prefix_space", false},
           {"trim_offsets", false},
           {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", false},
        {"use_regex", false}}},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", false},
        {"use_regex", false}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", m}}},
  };
}

Json QwenConfig() {
  return {{"bos_token", nullptr}, {"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"}};
}

// SentencePiece-style BPE in Llama / Mixtral's layout: <unk> <s> </s>, <0x00>..<0xFF> at 3..258,
// then pieces.
Json SentencePieceStyle() {
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  int id = 259;
  for (const char* s : {"▁", "h", "e", "l", "o", "w", "r", "d"}) vocab[s] = id++;  // 259..266
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"▁", "h"},      // 267 ▁h
      {"e", "l"},      // 268 el
      {"▁h", "el"},    // 269 ▁hel
      {"l", "o"},      // 270 lo
      {"▁hel", "lo"},  // 271 ▁hello
      {"▁", "w"},      // 272 ▁w
      {"o", "r"},      // 273 or
      {"▁w", "or"},    // 274 ▁wor
      {"l", "d"},      // 275 ld
      {"▁wor", "ld"},  // 276 ▁world
  };
  Json m = Json::array();
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    m.push_back(a + " " + b);
  }
  Json added = Json::array();
  int sid = 0;
  for (const char* s : {"<unk>", "<s>", "</s>"}) {
    added.push_back({{"id", sid++},
                     {"content", s},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "▁"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", m}}},
  };
}

Json SentencePieceConfig() {
  return {{"add_bos_token", true},
          {"add_eos_token", false},
          {"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}, {"special", true}}},
          {"eos_token", "</s>"},
          {"unk_token", "<unk>"}};
}

// A character-level BPE (no merges, no pre-tokenizer, no normalizer) for added-token tests.
Json CharLevel(const std::string& chars, Json added) {
  Json vocab = Json::object();
  int id = 0;
  for (size_t i = 0; i < chars.size(); ++i) vocab[std::string(1, chars[i])] = id++;
  return {{"added_tokens", std::move(added)},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}}}};
}

Json Added(int id, const std::string& content, bool special, bool lstrip = false,
           bool rstrip = false, bool single_word = false, bool normalized = false) {
  return {{"id", id},          {"content", content}, {"single_word", single_word},
          {"lstrip", lstrip},  {"rstrip", rstrip},   {"normalized", normalized},
          {"special", special}};
}

// ---------------------------------------------------------------------------------------------
// Byte-level BPE (Qwen2 style)

TEST(TokenizerByteLevel, MergesInBothFormsGiveTheSameIds) {
  for (bool pairs : {false, true}) {
    SCOPED_TRACE(pairs ? "pair merges" : "string merges");
    auto tok = MustLoad(QwenStyle(pairs), QwenConfig());
    ASSERT_NE(tok, nullptr);
    // "hello" | " world": h e l l o -> he l l o -> he ll o -> hell o -> hello (259);
    // Ġ w o r l d -> Ġw o r l d -> Ġw or l d -> Ġwor l d -> Ġwor ld -> Ġworld (264).
    EXPECT_EQ(tok->Encode("hello world", false), (Ids{259, 264}));
  }
}

TEST(TokenizerByteLevel, Qwen2RegexSplitsSpacesAndNewlines) {
  auto tok = MustLoad(QwenStyle(false), QwenConfig());
  ASSERT_NE(tok, nullptr);
  // "hello" | " " (\s+(?!\S) leaves the last space) | " world" | "\n\n" (\s*[\r\n]+).
  EXPECT_EQ(tok->Encode("hello  world\n\n", false), (Ids{259, 32, 264, 266}));
  // "a" | "  " | " b": the run keeps all but its last space, which joins the word.
  EXPECT_EQ(tok->Encode("a   b", false), (Ids{97, 265, 32, 98}));
  // Trailing spaces: \s+(?!\S) takes the whole run at the end of the text.
  EXPECT_EQ(tok->Encode("a  ", false), (Ids{97, 265}));
  // Digits are split one by one (\p{N}), so "12" never reaches the "1 2" merge.
  EXPECT_EQ(tok->Encode("12", false), (Ids{'1', '2'}));
  // Contractions are matched case-insensitively: "I" | "'M" ; punctuation run " ?!" absorbs
  // the following newlines.
  EXPECT_EQ(tok->Encode("I'M ?!\n\nx", false), (Ids{'I', '\'', 'M', 32, '?', '!', 266, 'x'}));
  // \s is Unicode White_Space as in Oniguruma, so U+180E (E1 A0 8E) is not a space (PCRE2's own
  // \s would take it): "a" | " " | " \u180E" (punctuation-like run) | "b".
  EXPECT_EQ(tok->Encode("a  \xE1\xA0\x8E"
                        "b",
                        false),
            (Ids{'a', 32, 32, 0xE1, 0xA0, 0x8E, 'b'}));
}

TEST(TokenizerByteLevel, CjkAndEmoji) {
  auto tok = MustLoad(QwenStyle(false), QwenConfig());
  ASSERT_NE(tok, nullptr);
  // 中 = E4 B8 AD = "ä¸Ń" -> 268; 文 = E6 96 87, no merges.
  EXPECT_EQ(tok->Encode("中文", false), (Ids{268, 0xE6, 0x96, 0x87}));
  EXPECT_EQ(tok->Encode("😀", false), (Ids{0xF0, 0x9F, 0x98, 0x80}));
}

TEST(TokenizerByteLevel, NfcNormalizerComposes) {
  auto tok = MustLoad(QwenStyle(false), QwenConfig());
  ASSERT_NE(tok, nullptr);
  // e + U+0301 composes to é (C3 A9).
  EXPECT_EQ(tok->Encode("e\xCC\x81", false), (Ids{0xC3, 0xA9}));
  EXPECT_EQ(tok->Encode("\xC3\xA9", false), (Ids{0xC3, 0xA9}));
}

TEST(TokenizerByteLevel, RoundTrips) {
  auto tok = MustLoad(QwenStyle(true), QwenConfig());
  ASSERT_NE(tok, nullptr);
  for (const char* text :
       {"hello world", "  leading and trailing  ", "a\n\n\nb\r\n\tc", "    \n    ",
        "中文：你好，世界！", "emoji 😀👍🏽 and ZWJ 👨‍👩‍👧",
        "mixed 123 4567 español Ελληνικά", "tabs\t\tand   spaces", "", "\n", " ",
        "it's we'll THEY'RE"}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(tok->Decode(tok->Encode(text, false), false), text);
  }
}

TEST(TokenizerByteLevel, SpecialTokens) {
  auto tok = MustLoad(QwenStyle(false), QwenConfig());
  ASSERT_NE(tok, nullptr);
  const Ids ids = {kImStart, 'u', 's', 'e', 'r', 10, 'h', 'i', kImEnd};
  EXPECT_EQ(tok->Encode("<|im_start|>user\nhi<|im_end|>", false), ids);
  // The ByteLevel post-processor adds nothing.
  EXPECT_EQ(tok->Encode("<|im_start|>user\nhi<|im_end|>", true), ids);
  EXPECT_EQ(tok->Decode(ids, false), "<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(tok->Decode(ids, true), "user\nhi");
  EXPECT_TRUE(tok->IsSpecial(kImEnd));
  EXPECT_FALSE(tok->IsSpecial(259));
  EXPECT_EQ(tok->TokenToId("<|im_end|>"), kImEnd);
  EXPECT_EQ(tok->TokenToId("Ġworld"), 264);
  EXPECT_EQ(tok->TokenToId("nope"), std::nullopt);
  EXPECT_EQ(tok->IdToToken(kImStart), "<|im_start|>");
  EXPECT_EQ(tok->IdToToken(259), "hello");
  EXPECT_EQ(tok->IdToToken(9999), "");
  EXPECT_EQ(tok->vocab_size(), 273);
  EXPECT_EQ(tok->bos_id(), std::nullopt);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->eos_id(), kImEnd);
  EXPECT_EQ(tok->eos_token(), "<|im_end|>");
  EXPECT_EQ(tok->bos_token(), "");
}

TEST(TokenizerByteLevel, DecodeDropsUnknownIdsAndSurvivesInvalidUtf8) {
  auto tok = MustLoad(QwenStyle(false), QwenConfig());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Decode(Ids{259, -5, 100000, 264}, false), "hello world");
  // E4 B8 (truncated 中) is one maximal invalid subpart: one U+FFFD; 0xFF alone: another.
  EXPECT_EQ(tok->Decode(Ids{0xE4, 0xB8, 'a', 0xFF}, false),
            "\xEF\xBF\xBD"
            "a"
            "\xEF\xBF\xBD");
  // E0 80: E0 needs A0..BF next, so E0 and 80 are replaced separately.
  EXPECT_EQ(tok->Decode(Ids{0xE0, 0x80}, false), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok->Decode(Ids{}, false), "");
}

TEST(TokenizerByteLevel, InvalidUtf8InputIsReplaced) {
  auto tok = MustLoad(QwenStyle(false), QwenConfig());
  ASSERT_NE(tok, nullptr);
  // "a" 0xFF "b" encodes as "a\uFFFDb" would: U+FFFD = EF BF BD is not a letter, so it and "b"
  // are separate pre-tokens.
  EXPECT_EQ(tok->Encode("a\xFF"
                        "b",
                        false),
            tok->Encode("a\xEF\xBF\xBD"
                        "b",
                        false));
  EXPECT_EQ(tok->Encode("a\xFF"
                        "b",
                        false),
            (Ids{'a', 0xEF, 0xBF, 0xBD, 'b'}));
}

TEST(TokenizerByteLevel, GptTwoPatternWithPrefixSpace) {
  // Plain ByteLevel pre-tokenizer (use_regex=true, add_prefix_space=true): " hello" | " world".
  Json j = QwenStyle(false);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  auto tok = MustLoad(j);
  ASSERT_NE(tok, nullptr);
  // Ġ h e l l o: (h,e) -> he; (l,l) -> ll; he ll -> hell; hell o -> hello: "Ġ" + "hello".
  EXPECT_EQ(tok->Encode("hello world", false), (Ids{32, 259, 264}));
  // GPT-2's pattern keeps digit runs together: " 12" -> Ġ 1 2 -> Ġ 12.
  EXPECT_EQ(tok->Encode("12", false), (Ids{32, 269}));
  // 's is its own pre-token.
  EXPECT_EQ(tok->Encode("he's", false), (Ids{32, 256, '\'', 's'}));
}

TEST(TokenizerByteLevel, IgnoreMerges) {
  Json j = QwenStyle(false);
  // Add "low" directly to the vocabulary with no merge path to it.
  j["model"]["vocab"]["low"] = 280;
  auto plain = MustLoad(j);
  j["model"]["ignore_merges"] = true;
  auto ignoring = MustLoad(j);
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(ignoring, nullptr);
  EXPECT_EQ(plain->Encode("low", false), (Ids{'l', 'o', 'w'}));
  EXPECT_EQ(ignoring->Encode("low", false), (Ids{280}));
}

TEST(TokenizerByteLevel, DeepSeekV3SequenceOfSplits) {
  Json j = QwenStyle(false);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", "\\p{N}{1,3}"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "Split"},
         {"pattern", {{"Regex", "[一-龥぀-ゟ゠-ヿ]+"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "Split"},
         {"pattern",
          {{"Regex",
            "[!\"#$%&'()*+,\\-./"
            ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{"
            "L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"},
         {"add_prefix_space", false},
         {"trim_offsets", true},
         {"use_regex", false}}}}};
  auto tok = MustLoad(j);
  ASSERT_NE(tok, nullptr);
  // Digits in runs of at most three: "1212" -> "121" | "2"; the "1 2" merge then applies inside
  // each run: 1 2 1 -> 12 1.
  EXPECT_EQ(tok->Encode("1212", false), (Ids{269, '1', '2'}));
  // CJK runs are split off before the word pattern: "a中" -> "a" | "中".
  EXPECT_EQ(tok->Encode("a中", false), (Ids{'a', 268}));
  // Punctuation followed by letters stays together: ".hello" is one pre-token; no merge joins
  // "." with "h", so "." then the letters merge as usual.
  EXPECT_EQ(tok->Encode(".hello world", false), (Ids{'.', 259, 264}));
  for (const char* text : {"价格是1234元。", "hello, world!\n\n  x", "カタカナとひらがな"}) {
    EXPECT_EQ(tok->Decode(tok->Encode(text, false), false), text);
  }
}

// ---------------------------------------------------------------------------------------------
// SentencePiece-style BPE (Llama / Mixtral)

TEST(TokenizerSentencePiece, EncodeWithNormalizerAndTemplate) {
  auto tok = MustLoad(SentencePieceStyle(), SentencePieceConfig());
  ASSERT_NE(tok, nullptr);
  // "▁hello▁world" is one word: ▁h el l o -> ▁hel l o -> ▁hel lo -> ▁hello; same for ▁world.
  EXPECT_EQ(tok->Encode("hello world", false), (Ids{271, 276}));
  EXPECT_EQ(tok->Encode("hello world", true), (Ids{1, 271, 276}));
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->bos_token(), "<s>");
  EXPECT_EQ(tok->eos_id(), 2);
  // Leading space: "▁▁hello" -> ▁ ▁h el l o -> ... -> ▁ ▁hello.
  EXPECT_EQ(tok->Encode(" hello", false), (Ids{259, 271}));
  EXPECT_EQ(tok->Encode("", true), (Ids{1}));
}

TEST(TokenizerSentencePiece, ByteFallbackAndUnk) {
  auto tok = MustLoad(SentencePieceStyle(), SentencePieceConfig());
  ASSERT_NE(tok, nullptr);
  // 'i' is not in the vocabulary: <0x69> = 3 + 0x69.
  EXPECT_EQ(tok->Encode("hi", false), (Ids{267, 3 + 0x69}));
  // 中 = E4 B8 AD.
  EXPECT_EQ(tok->Encode("中", false), (Ids{259, 3 + 0xE4, 3 + 0xB8, 3 + 0xAD}));
  EXPECT_EQ(tok->Decode(Ids{259, 3 + 0xE4, 3 + 0xB8, 3 + 0xAD}, false), "中");
  // A run of byte tokens that is not valid UTF-8 gives one U+FFFD per byte (ByteFallback).
  EXPECT_EQ(tok->Decode(Ids{3 + 0xE4, 3 + 0xB8, 271}, false), "\xEF\xBF\xBD\xEF\xBF\xBD hello");
}

TEST(TokenizerSentencePiece, DecodeStripsOneLeadingSpace) {
  auto tok = MustLoad(SentencePieceStyle(), SentencePieceConfig());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Decode(Ids{1, 271, 276}, true), "hello world");
  EXPECT_EQ(tok->Decode(Ids{1, 271, 276}, false), "<s> hello world");
  EXPECT_EQ(tok->Decode(Ids{259, 271}, false), " hello");
  for (const char* text : {"hello world", "  hello   world ", "héllo 中文 😀"}) {
    EXPECT_EQ(tok->Decode(tok->Encode(text, true), true), text);
  }
}

TEST(TokenizerSentencePiece, SpecialTokensSplitBeforeNormalization) {
  auto tok = MustLoad(SentencePieceStyle(), SentencePieceConfig());
  ASSERT_NE(tok, nullptr);
  // Each piece between added tokens is normalized on its own, so both get a "▁" prefix.
  EXPECT_EQ(tok->Encode("hello</s>world", false), (Ids{271, 2, 276}));
  EXPECT_EQ(tok->Encode("<s>hello", false), (Ids{1, 271}));
}

TEST(TokenizerSentencePiece, UnkWithoutByteFallbackFusesRuns) {
  Json j = SentencePieceStyle();
  j["model"]["byte_fallback"] = false;
  auto fused = MustLoad(j);
  j["model"]["fuse_unk"] = false;
  auto unfused = MustLoad(j);
  ASSERT_NE(fused, nullptr);
  ASSERT_NE(unfused, nullptr);
  // ▁ x y h: "xy" are unknown.
  EXPECT_EQ(fused->Encode("xyh", false), (Ids{259, 0, 260}));
  EXPECT_EQ(unfused->Encode("xyh", false), (Ids{259, 0, 0, 260}));
}

TEST(TokenizerSentencePiece, MetaspacePreTokenizerVariant) {
  for (const char* scheme : {"first", "always"}) {
    SCOPED_TRACE(scheme);
    Json j = SentencePieceStyle();
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {
        {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", scheme}, {"split", false}};
    j["decoder"] = {
        {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", scheme}, {"split", false}};
    auto tok = MustLoad(j);
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(tok->Encode("hello world", false), (Ids{271, 276}));
    EXPECT_EQ(tok->Decode(Ids{271, 276}, false), "hello world");
    // After an added token the piece does not start the input: "first" adds no "▁".
    // h e l l o -> h el l o -> h el lo.
    EXPECT_EQ(tok->Encode("<s>hello", false),
              std::string(scheme) == "first" ? (Ids{1, 260, 268, 270}) : (Ids{1, 271}));
  }
}

TEST(TokenizerSentencePiece, MetaspaceSplit) {
  Json j = SentencePieceStyle();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"add_prefix_space", true}};
  auto tok = MustLoad(j);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("hello world", false), (Ids{271, 276}));
  EXPECT_EQ(tok->Encode("hello  world", false), (Ids{271, 259, 276}));
}

TEST(TokenizerSentencePiece, AddBosTokenWithoutPostProcessor) {
  Json j = SentencePieceStyle();
  j["post_processor"] = nullptr;
  auto with_config = MustLoad(j, SentencePieceConfig());
  ASSERT_NE(with_config, nullptr);
  EXPECT_EQ(with_config->Encode("hello", true), (Ids{1, 271}));
  EXPECT_EQ(with_config->Encode("hello", false), (Ids{271}));
  EXPECT_TRUE(with_config->add_bos());
  Json config = SentencePieceConfig();
  config["add_bos_token"] = false;
  config["add_eos_token"] = true;
  auto eos_only = MustLoad(j, config);
  ASSERT_NE(eos_only, nullptr);
  EXPECT_EQ(eos_only->Encode("hello", true), (Ids{271, 2}));
  EXPECT_FALSE(eos_only->add_bos());
  auto no_config = MustLoad(j);
  ASSERT_NE(no_config, nullptr);
  EXPECT_EQ(no_config->Encode("hello", true), (Ids{271}));
  EXPECT_FALSE(no_config->add_bos());
  EXPECT_EQ(no_config->bos_id(), std::nullopt);
}

TEST(TokenizerSentencePiece, TemplateWithoutConfigDefinesBos) {
  auto tok = MustLoad(SentencePieceStyle());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->bos_token(), "<s>");
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->Encode("hello", true), (Ids{1, 271}));
}

TEST(TokenizerSentencePiece, TemplateWithEos) {
  Json j = SentencePieceStyle();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single",
                          {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                           {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
                         {"pair", Json::array()},
                         {"special_tokens",
                          {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
                           {"</s>", {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}}}}}};
  auto tok = MustLoad(j, SentencePieceConfig());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("hello", true), (Ids{1, 271, 2}));
}

// ---------------------------------------------------------------------------------------------
// Added tokens: longest match, lstrip / rstrip / single_word / normalized

TEST(TokenizerAddedTokens, LstripRstripSingleWord) {
  // Vocabulary: a=0 b=1 ' '=2 c=3 s=4 t=5 x=6 <=7 >=8 M=9; added tokens follow: 10, 11, 12.
  Json j = CharLevel("ab cstx<>M", {Added(10, "<M>", true, /*lstrip=*/true),
                                    Added(11, "[R]", false, false, /*rstrip=*/true),
                                    Added(12, "cat", false, false, false, /*single_word=*/true)});
  auto tok = MustLoad(j);
  ASSERT_NE(tok, nullptr);
  // lstrip: the spaces before <M> become part of the token.
  EXPECT_EQ(tok->Encode("a  <M> b", false), (Ids{0, 10, 2, 1}));
  // rstrip: the spaces after [R] too.
  EXPECT_EQ(tok->Encode("a [R]  b", false), (Ids{0, 2, 11, 1}));
  // single_word: only a free-standing "cat" is the token.
  EXPECT_EQ(tok->Encode("cat cats xcat", false), (Ids{12, 2, 3, 0, 5, 4, 2, 6, 3, 0, 5}));
  // "Word" is Rust regex's \w: '_' counts, '-' does not (characters missing from the
  // vocabulary, with no unk token, are dropped).
  EXPECT_EQ(tok->Encode("_cat", false), (Ids{3, 0, 5}));
  EXPECT_EQ(tok->Encode("-cat", false), (Ids{12}));
  EXPECT_FALSE(tok->IsSpecial(11));
  EXPECT_TRUE(tok->IsSpecial(10));
  EXPECT_EQ(tok->Decode(Ids{0, 10, 11, 1}, true), "a [R] b");
}

TEST(TokenizerAddedTokens, LongestMatchFirst) {
  Json j =
      CharLevel("ab<>", {Added(4, "<a>", true), Added(5, "<a><b>", true), Added(6, "<b>", false)});
  auto tok = MustLoad(j);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("<a><b>", false), (Ids{5}));
  EXPECT_EQ(tok->Encode("<a><a><b>b", false), (Ids{4, 5, 1}));
  EXPECT_EQ(tok->Encode("<a<b>", false), (Ids{2, 0, 6}));
}

TEST(TokenizerAddedTokens, NormalizedTokensMatchNormalizedText) {
  Json j = SentencePieceStyle();
  // A normalized added token's pattern goes through the normalizer too: "hey" -> "▁hey".
  j["added_tokens"].push_back(Added(277, "hey", false, false, false, false, /*normalized=*/true));
  auto tok = MustLoad(j);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("hey hey", false), (Ids{277, 277}));
  // Unnormalized text never contains "▁hey" at the start of a piece without the prefix... but
  // the normalizer adds it, so "hey" alone matches as well.
  EXPECT_EQ(tok->Encode("hey", false), (Ids{277}));
}

TEST(TokenizerAddedTokens, AddedTokenInModelVocabKeepsModelId) {
  Json j = CharLevel("ab", {Added(50, "a", false)});
  auto tok = MustLoad(j);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->TokenToId("a"), 0);
  EXPECT_EQ(tok->Encode("ba", false), (Ids{1, 0}));
  EXPECT_EQ(tok->vocab_size(), 2);
}

// ---------------------------------------------------------------------------------------------
// Streaming decode

TEST(TokenizerStreaming, HoldsBackPartialCharacters) {
  auto tok = MustLoad(QwenStyle(false), QwenConfig());
  ASSERT_NE(tok, nullptr);
  StreamingDecoder dec(*tok);
  EXPECT_EQ(dec.Add(259), "hello");
  EXPECT_EQ(dec.Add(0xE4), "");
  EXPECT_EQ(dec.Add(0xB8), "");
  EXPECT_EQ(dec.Add(0xAD), "中");
  EXPECT_EQ(dec.Add(264), " world");
  EXPECT_EQ(dec.Add(kImEnd), "");  // special, skipped
  EXPECT_EQ(dec.Add(0xF0), "");
  EXPECT_EQ(dec.Add(0x9F), "");
  EXPECT_EQ(dec.Finish(), "\xEF\xBF\xBD");  // F0 9F cut off: one U+FFFD
}

TEST(TokenizerStreaming, ConcatenationEqualsDecode) {
  auto qwen = MustLoad(QwenStyle(false), QwenConfig());
  auto sp = MustLoad(SentencePieceStyle(), SentencePieceConfig());
  ASSERT_NE(qwen, nullptr);
  ASSERT_NE(sp, nullptr);
  for (const Tokenizer* tok : {qwen.get(), sp.get()}) {
    for (bool skip : {true, false}) {
      for (const char* text :
           {"hello world 中文 😀 x", "  hello\n\n world  ", "<s>hello</s> world<|im_end|>"}) {
        SCOPED_TRACE(text);
        Ids ids = tok->Encode(text, true);
        StreamingDecoder dec(*tok, skip);
        std::string streamed;
        for (int32_t id : ids) streamed += dec.Add(id);
        streamed += dec.Finish();
        EXPECT_EQ(streamed, tok->Decode(ids, skip));
      }
    }
  }
}

TEST(TokenizerStreaming, SentencePieceSpacesAfterSkippedSpecial) {
  auto tok = MustLoad(SentencePieceStyle(), SentencePieceConfig());
  ASSERT_NE(tok, nullptr);
  StreamingDecoder dec(*tok);
  EXPECT_EQ(dec.Add(1), "");
  EXPECT_EQ(dec.Add(271), "hello");
  EXPECT_EQ(dec.Add(2), "");
  EXPECT_EQ(dec.Add(276), " world");
  EXPECT_EQ(dec.Add(3 + 0xE4), "");
  EXPECT_EQ(dec.Add(3 + 0xB8), "");
  EXPECT_EQ(dec.Add(3 + 0xAD), "中");
  EXPECT_EQ(dec.Finish(), "");
}

TEST(TokenizerStreaming, GarbageBytesNeverStall) {
  auto tok = MustLoad(QwenStyle(false), QwenConfig());
  ASSERT_NE(tok, nullptr);
  StreamingDecoder dec(*tok);
  std::string out;
  for (int i = 0; i < 100; ++i) out += dec.Add(0x80);  // lone continuation bytes
  out += dec.Finish();
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += "\xEF\xBF\xBD";
  EXPECT_EQ(out, expected);
}

// ---------------------------------------------------------------------------------------------
// Unicode helpers

TEST(TokenizerUnicode, Nfc) {
  using tokenizer_internal::NormalizeNfc;
  EXPECT_EQ(NormalizeNfc("plain ascii"), "plain ascii");
  EXPECT_EQ(NormalizeNfc("e\xCC\x81"), "\xC3\xA9");              // e + acute -> é
  EXPECT_EQ(NormalizeNfc("e\xCC\x82\xCC\xA3"), "\xE1\xBB\x87");  // e + ^ + dot below -> ệ
  EXPECT_EQ(NormalizeNfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"),
            "\xEA\xB0\x81");                                // ᄀ ᅡ ᆨ -> 각
  EXPECT_EQ(NormalizeNfc("\xE2\x84\xAB"), "\xC3\x85");      // Angstrom sign -> Å
  EXPECT_EQ(NormalizeNfc("\xEF\xA4\x80"), "\xE8\xB1\x88");  // U+F900 -> U+8C48
  EXPECT_EQ(NormalizeNfc("中文 ok"), "中文 ok");
  EXPECT_EQ(tokenizer_internal::NormalizeNfd("\xC3\xA9"), "e\xCC\x81");
}

TEST(TokenizerUnicode, LossyMatchesRust) {
  using tokenizer_internal::Utf8Lossy;
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(Utf8Lossy("ok"), "ok");
  EXPECT_EQ(Utf8Lossy("\xF0\x9F\x98"), r);          // truncated 4-byte sequence
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), r + r + r);  // surrogate: ED then A0, 80
  EXPECT_EQ(Utf8Lossy("\xC0\xAF"), r + r);          // overlong
  EXPECT_EQ(Utf8Lossy("a\xE4\xB8"
                      "b"),
            "a" + r + "b");
}

// ---------------------------------------------------------------------------------------------
// Errors

void ExpectError(const absl::Status& s, absl::StatusCode code, const std::string& substr) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(s.message().find(substr), std::string::npos) << s;
}

TEST(TokenizerErrors, MalformedJson) {
  ExpectError(LoadError("{\"model\": "), absl::StatusCode::kInvalidArgument,
              "tokenizer.json: malformed JSON");
  ExpectError(LoadError("[1, 2]"), absl::StatusCode::kInvalidArgument, "not a JSON object");
  ExpectError(LoadError(QwenStyle(false).dump(), "{oops"), absl::StatusCode::kInvalidArgument,
              "tokenizer_config.json: malformed JSON");
}

TEST(TokenizerErrors, UnsupportedModels) {
  for (const char* type : {"Unigram", "WordPiece", "WordLevel"}) {
    Json j = {{"model", {{"type", type}, {"vocab", Json::array()}}}};
    ExpectError(LoadError(j.dump()), absl::StatusCode::kUnimplemented,
                std::string("unsupported tokenizer model '") + type + "'");
  }
}

TEST(TokenizerErrors, MissingAndMistypedFields) {
  ExpectError(LoadError("{}"), absl::StatusCode::kInvalidArgument, "tokenizer.json: model");
  ExpectError(LoadError(R"({"model": {"type": "BPE", "merges": []}})"),
              absl::StatusCode::kInvalidArgument, "'vocab'");
  ExpectError(LoadError(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})"),
              absl::StatusCode::kInvalidArgument, "vocab entry 'a'");
  ExpectError(LoadError(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})"),
              absl::StatusCode::kInvalidArgument, "'b' that is not in the vocabulary");
  ExpectError(LoadError(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}})"),
              absl::StatusCode::kInvalidArgument, "has no space");
  ExpectError(LoadError(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "a"]]}})"),
              absl::StatusCode::kInvalidArgument, "makes token 'aa'");
  ExpectError(LoadError(R"({"model": {"type": "BPE", "vocab": {}, "merges": [], "dropout": 0.1}})"),
              absl::StatusCode::kUnimplemented, "dropout");
  Json j = QwenStyle(false);
  j["added_tokens"][0].erase("content");
  ExpectError(LoadError(j.dump()), absl::StatusCode::kInvalidArgument,
              "added_tokens[0]: missing field 'content'");
  j = QwenStyle(false);
  j["model"]["byte_fallback"] = "yes";
  ExpectError(LoadError(j.dump()), absl::StatusCode::kInvalidArgument,
              "'byte_fallback' is not a boolean");
  ExpectError(LoadError(QwenStyle(false).dump(), R"({"bos_token": 5})"),
              absl::StatusCode::kInvalidArgument, "tokenizer_config.json: bos_token");
}

TEST(TokenizerErrors, BadComponents) {
  Json j = QwenStyle(false);
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "(unclosed"}};
  ExpectError(LoadError(j.dump()), absl::StatusCode::kInvalidArgument, "invalid regex");
  j = QwenStyle(false);
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways";
  ExpectError(LoadError(j.dump()), absl::StatusCode::kInvalidArgument, "unknown behavior");
  j = QwenStyle(false);
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  ExpectError(LoadError(j.dump()), absl::StatusCode::kUnimplemented,
              "unsupported pre_tokenizer 'Whitespace'");
  j = QwenStyle(false);
  j["normalizer"] = {{"type", "Lowercase"}};
  ExpectError(LoadError(j.dump()), absl::StatusCode::kUnimplemented,
              "unsupported normalizer 'Lowercase'");
  j = QwenStyle(false);
  j["decoder"] = {{"type", "WordPiece"}};
  ExpectError(LoadError(j.dump()), absl::StatusCode::kUnimplemented,
              "unsupported decoder 'WordPiece'");
  j = QwenStyle(false);
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  ExpectError(LoadError(j.dump()), absl::StatusCode::kUnimplemented,
              "unsupported post_processor 'RobertaProcessing'");
  j = SentencePieceStyle();
  j["post_processor"]["special_tokens"] = Json::object();
  ExpectError(LoadError(j.dump()), absl::StatusCode::kInvalidArgument,
              "special token '<s>' is not in 'special_tokens'");
  j = SentencePieceStyle();
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "odd"}};
  ExpectError(LoadError(j.dump()), absl::StatusCode::kInvalidArgument, "prepend_scheme");
  j = SentencePieceStyle();
  j["normalizer"]["normalizers"][1]["pattern"] = {{"Neither", "x"}};
  ExpectError(LoadError(j.dump()), absl::StatusCode::kInvalidArgument, "normalizer.Replace");
}

TEST(TokenizerErrors, MissingDirectory) {
  auto t = Tokenizer::FromDirectory("/nonexistent/tandem/dir");
  ASSERT_FALSE(t.ok());
  ExpectError(t.status(), absl::StatusCode::kNotFound, "/nonexistent/tandem/dir/tokenizer.json");
}

// ---------------------------------------------------------------------------------------------
// Robustness: arbitrary bytes in, arbitrary ids in, never a crash, always valid UTF-8 out.

TEST(TokenizerRobustness, GarbageNeverCrashes) {
  auto qwen = MustLoad(QwenStyle(false), QwenConfig());
  auto sp = MustLoad(SentencePieceStyle(), SentencePieceConfig());
  ASSERT_NE(qwen, nullptr);
  ASSERT_NE(sp, nullptr);
  std::mt19937 rng(7);
  for (const Tokenizer* tok : {qwen.get(), sp.get()}) {
    for (int round = 0; round < 300; ++round) {
      std::string bytes(rng() % 40, '\0');
      for (char& c : bytes) c = static_cast<char>(rng() % 256);
      Ids ids = tok->Encode(bytes, round % 2 == 0);
      for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < tok->vocab_size());
      Ids random_ids(rng() % 20);
      for (int32_t& id : random_ids) id = static_cast<int32_t>(rng() % 400) - 50;
      const std::string text = tok->Decode(random_ids, round % 3 == 0);
      EXPECT_TRUE(tokenizer_internal::IsValidUtf8(text));
      StreamingDecoder dec(*tok, round % 3 == 0);
      std::string streamed;
      for (int32_t id : random_ids) streamed += dec.Add(id);
      streamed += dec.Finish();
      EXPECT_TRUE(tokenizer_internal::IsValidUtf8(streamed));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Concurrency: Encode is const and may run from many threads (shared word cache).

TEST(TokenizerThreads, ConcurrentEncode) {
  auto tok = MustLoad(QwenStyle(false), QwenConfig());
  ASSERT_NE(tok, nullptr);
  const Ids expected = tok->Encode("hello world 中文 hello", false);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (tok->Encode("hello world 中文 hello", false) != expected) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// ---------------------------------------------------------------------------------------------
// Data-driven: references generated by HF tokenizers for the fixtures (tests/fixtures/README.md).

std::vector<std::filesystem::path> FixtureDirs() {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  const fs::path root = fs::path(TANDEM_SOURCE_DIR) / "tests" / "fixtures";
  for (const fs::path& base : {root, root / "tokenizers"}) {
    std::error_code ec;
    if (!fs::is_directory(base, ec)) continue;
    for (const auto& entry : fs::directory_iterator(base, ec)) {
      if (entry.is_directory() && fs::exists(entry.path() / "reference.json") &&
          fs::exists(entry.path() / "tokenizer.json")) {
        dirs.push_back(entry.path());
      }
    }
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

TEST(TokenizerFixtures, MatchHuggingFaceReferences) {
  const auto dirs = FixtureDirs();
  if (dirs.empty()) GTEST_SKIP() << "no tests/fixtures/*/reference.json with a tokenizer.json yet";
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir.string());
    auto tok = Tokenizer::FromDirectory(dir.string());
    ASSERT_TRUE(tok.ok()) << tok.status();
    std::ifstream in(dir / "reference.json");
    Json ref = Json::parse(in, nullptr, false);
    ASSERT_FALSE(ref.is_discarded());
    int checked = 0;
    for (const Json& c : ref.value("tokenize", Json::array())) {
      const std::string text = c.at("text").get<std::string>();
      SCOPED_TRACE("tokenize: " + c.at("text").dump());
      if (c.contains("ids")) {
        EXPECT_EQ((*tok)->Encode(text, false), c.at("ids").get<Ids>());
        ++checked;
      }
      if (c.contains("ids_with_special")) {
        const Ids with = c.at("ids_with_special").get<Ids>();
        EXPECT_EQ((*tok)->Encode(text, true), with);
        ++checked;
        // add_bos() tells whether add_special_tokens=True puts BOS in front.
        if (c.contains("ids")) {
          const Ids without = c.at("ids").get<Ids>();
          const bool bos_added = with.size() > without.size() && (*tok)->bos_id().has_value() &&
                                 with.front() == *(*tok)->bos_id();
          EXPECT_EQ((*tok)->add_bos(), bos_added);
        }
      }
    }
    // Rendered chat prompts are tokenized without special tokens (the template writes BOS).
    for (const Json& c : ref.value("chat", Json::array())) {
      if (!c.contains("text") || !c.contains("ids")) continue;
      SCOPED_TRACE("chat: " + c.at("text").dump());
      EXPECT_EQ((*tok)->Encode(c.at("text").get<std::string>(), false), c.at("ids").get<Ids>());
      ++checked;
    }
    for (const Json& c : ref.value("decode", Json::array())) {
      const Ids ids = c.at("ids").get<Ids>();
      SCOPED_TRACE("decode: " + c.at("ids").dump());
      const std::string text = c.at("text").get<std::string>();
      EXPECT_EQ((*tok)->Decode(ids, false), text);
      ++checked;
      // Streaming gives the same text when the bytes are valid. (With invalid bytes it cannot:
      // ByteFallback turns a whole run of byte tokens into U+FFFDs when any of it is invalid,
      // including characters that were complete, and already emitted, before the bad byte.)
      if (text.find("\xEF\xBF\xBD") != std::string::npos) continue;
      StreamingDecoder dec(**tok, /*skip_special_tokens=*/false);
      std::string streamed;
      for (int32_t id : ids) streamed += dec.Add(id);
      streamed += dec.Finish();
      EXPECT_EQ(streamed, text);
    }
    EXPECT_GT(checked, 0) << "reference.json has no tokenize / decode cases";
  }
}

}  // namespace
}  // namespace tandem
