// Hugging Face `tokenizer.json` tokenizer: the public entry point.
//
// Reproduces the Rust `tokenizers` library (and so transformers' fast tokenizers) exactly for the
// BPE styles real MoE checkpoints use:
//   * byte-level BPE (Qwen2/Qwen3, DeepSeek-V3): NFC or no normalizer, `Split` regex and
//     `ByteLevel` pre-tokenizers (alone or in a `Sequence`), ByteLevel decoder;
//   * SentencePiece-style BPE (Mixtral, Llama): `Prepend`/`Replace` normalizers or the `Metaspace`
//     pre-tokenizer, `<0xNN>` byte fallback, Replace/ByteFallback/Fuse/Strip decoders.
// Added tokens are split out before normalization (longest match first, with lstrip / rstrip /
// single_word / normalized honoured); `TemplateProcessing` adds the special tokens.
// Anything else (WordPiece, Unigram, BERT-style normalizers, ...) is refused at load time with an
// error naming the file and the component.
//
// Thread safety: a loaded Tokenizer is immutable apart from an internal, mutex-protected word
// cache, so Encode / Decode may be called from any number of threads at once.
// A StreamingDecoder belongs to one generation and one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem {

namespace tokenizer_internal {
struct TokenizerImpl;
}  // namespace tokenizer_internal

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json (+ DIR/tokenizer_config.json when present).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromDirectory(const std::string& dir);
  // Same from file contents; `tokenizer_config_json` may be empty (no config).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      const std::string& tokenizer_json, const std::string& tokenizer_config_json);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // transformers' `tokenizer(text, add_special_tokens=...)["input_ids"]`. With
  // add_special_tokens the post-processor's template is applied (e.g. "<s> $A"); when the
  // tokenizer.json has no post-processor, tokenizer_config's add_bos_token / add_eos_token decide.
  // Invalid UTF-8 in `text` is replaced by U+FFFD first (Python strings cannot hold it).
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const;

  // transformers' `tokenizer.decode(ids, skip_special_tokens=...)`. Unknown ids are dropped;
  // byte sequences that are not valid UTF-8 come out as U+FFFD, as the HF library does.
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  // Max id + 1 over the model vocabulary and the added tokens.
  int32_t vocab_size() const;
  std::optional<int32_t> TokenToId(std::string_view token) const;
  std::string IdToToken(int32_t id) const;  // "" if unknown

  // BOS / EOS from tokenizer_config.json (bos_token / eos_token, strings or {"content": ...});
  // without a config, BOS is the special token the post-processor puts first, if any.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::string bos_token() const;  // "" when there is none (for chat templates)
  std::string eos_token() const;
  // True when Encode(text, /*add_special_tokens=*/true) puts the BOS id first, i.e. what
  // transformers does for prompts. Callers that tokenize with add_special_tokens=false and want
  // transformers' add_special_tokens=true result prepend bos_id() when this is true; never do
  // both (Encode(..., true) already contains it).
  bool add_bos() const;
  // True for added tokens marked "special" (those skip_special_tokens drops).
  bool IsSpecial(int32_t id) const;

 private:
  explicit Tokenizer(std::unique_ptr<tokenizer_internal::TokenizerImpl> impl);
  std::unique_ptr<tokenizer_internal::TokenizerImpl> impl_;
};

// Incremental detokenizer for one generation: feed ids as they are sampled, get back only text
// that is complete (a multi-byte character split across tokens is held back until its last byte
// arrives). The concatenation of every Add() and Finish() result equals
// tokenizer.Decode(all_ids, skip_special_tokens) whenever the bytes are valid UTF-8. Invalid
// bytes come out as U+FFFD and never stall the stream (text is released after at most 8 pending
// tokens); the one difference from Decode is that a byte-fallback tokenizer's Decode replaces a
// whole run of <0xNN> tokens when any byte in it is bad, while characters the stream already
// released stay as they were. Not thread-safe; the Tokenizer must outlive it.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tok, bool skip_special_tokens = true);
  std::string Add(int32_t id);  // text completed by this token (may be "")
  std::string Finish();         // flushes what is held back (U+FFFD for incomplete bytes)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // window: context tokens [0, read_) + pending tokens [read_, end)
  size_t read_ = 0;
  std::string prefix_;  // Decode(ids_[0, read_)), already emitted
};

}  // namespace tandem
