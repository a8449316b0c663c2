// StreamingDecoder (see tokenizer.h). Works on any decoder pipeline by diffing full decodes over
// a short window of ids: the window holds the previously emitted tokens as context (so that
// context-dependent decoders, such as the SentencePiece leading-space strip, render the new
// tokens exactly as a full Decode would) followed by the pending ones. Pending text ending in
// U+FFFD is an incomplete character and is held back, except after kMaxPending tokens (no valid
// character needs that many), when it is emitted as is.
#include "common/tokenizer.h"
#include "common/tokenizer_unicode.h"

namespace tandem {
namespace {

constexpr size_t kMaxPending = 8;

bool EndsWithReplacement(const std::string& s) {
  const std::string_view r = tokenizer_internal::kReplacementUtf8;
  return s.size() >= r.size() && s.compare(s.size() - r.size(), r.size(), r) == 0;
}

}  // namespace

StreamingDecoder::StreamingDecoder(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(tok), skip_special_(skip_special_tokens) {}

std::string StreamingDecoder::Add(int32_t id) {
  ids_.push_back(id);
  std::string full = tok_.Decode(ids_, skip_special_);
  const bool complete = !EndsWithReplacement(full);
  if (!complete && ids_.size() - read_ < kMaxPending) return "";
  std::string out;
  if (full.size() >= prefix_.size() && full.compare(0, prefix_.size(), prefix_) == 0) {
    out = full.substr(prefix_.size());
  } else {
    // The context renders differently next to the new tokens (invalid bytes merged with it):
    // fall back to the new tokens on their own.
    out = tok_.Decode(std::span<const int32_t>(ids_).subspan(read_), skip_special_);
  }
  // The emitted tokens become the context, unless they render as nothing (e.g. skipped special
  // tokens): then the older context stays too.
  std::vector<int32_t> emitted(ids_.begin() + read_, ids_.end());
  std::string emitted_text = tok_.Decode(emitted, skip_special_);
  if (!emitted_text.empty()) {
    ids_ = std::move(emitted);
    prefix_ = std::move(emitted_text);
  } else {
    prefix_ = std::move(full);
  }
  read_ = ids_.size();
  return out;
}

std::string StreamingDecoder::Finish() {
  std::string out;
  if (read_ < ids_.size()) {
    std::string full = tok_.Decode(ids_, skip_special_);
    if (full.size() >= prefix_.size() && full.compare(0, prefix_.size(), prefix_) == 0) {
      out = full.substr(prefix_.size());
    } else {
      out = tok_.Decode(std::span<const int32_t>(ids_).subspan(read_), skip_special_);
    }
  }
  ids_.clear();
  read_ = 0;
  prefix_.clear();
  return out;
}

}  // namespace tandem
