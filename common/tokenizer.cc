// Tokenizer loading and the encode / decode pipelines (see tokenizer.h). The components live in
// tokenizer_{normalizer,pre_tokenizer,bpe,added_tokens,decoder,post_processor}.cc; this file
// parses tokenizer.json / tokenizer_config.json into them and runs them in the HF library's
// order: added tokens -> normalizer -> pre-tokenizer -> model -> post-processor.
#include "common/tokenizer.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "common/tokenizer_added_tokens.h"
#include "common/tokenizer_bpe.h"
#include "common/tokenizer_decoder.h"
#include "common/tokenizer_normalizer.h"
#include "common/tokenizer_post_processor.h"
#include "common/tokenizer_pre_tokenizer.h"
#include "common/tokenizer_unicode.h"

namespace tandem {
namespace tokenizer_internal {

struct TokenizerImpl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<AddedVocabulary> added;
  std::unique_ptr<Decoder> decoder;
  SpecialTemplate special;  // what add_special_tokens=true adds
  std::optional<int32_t> bos_id, eos_id;
  std::string bos_token, eos_token;
};

namespace {

// Prefixes a component error with the file it came from, keeping the status code.
absl::Status InFile(std::string_view file, const absl::Status& s) {
  return absl::Status(s.code(), Cat(file, ": ", std::string(s.message())));
}

absl::StatusOr<Json> ParseJsonText(const std::string& text, std::string_view file) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Parse again with exceptions for nlohmann's message (it names the byte offset).
    try {
      Json unused = Json::parse(text);
      (void)unused;
    } catch (const Json::exception& e) {
      return absl::InvalidArgumentError(Cat(file, ": malformed JSON: ", e.what()));
    }
    return absl::InvalidArgumentError(Cat(file, ": malformed JSON"));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(Cat(file, ": top level is not a JSON object"));
  }
  return j;
}

// bos_token / eos_token in tokenizer_config.json: a string, {"content": ...}, or null.
absl::StatusOr<std::optional<std::string>> ConfigToken(const Json& config, std::string_view key) {
  const Json* f = FindField(config, key);
  if (f == nullptr) return std::optional<std::string>();
  if (f->is_string()) return std::optional<std::string>(f->get<std::string>());
  if (f->is_object()) {
    if (const Json* c = FindField(*f, "content"); c != nullptr && c->is_string()) {
      return std::optional<std::string>(c->get<std::string>());
    }
  }
  return JsonError(key, "must be a string, {\"content\": ...} or null");
}

absl::Status ParseTokenizerJson(const Json& j, TokenizerImpl* t) {
  const Json* model = FindField(j, "model");
  if (model == nullptr || !model->is_object()) {
    return JsonError("model", "missing or not an object");
  }
  std::string type = TypeOf(*model);
  if (type.empty() && FindField(*model, "merges") != nullptr) type = "BPE";
  if (type != "BPE") {
    return absl::UnimplementedError(Cat("unsupported tokenizer model '",
                                        type.empty() ? "(no type)" : type,
                                        "' (only BPE is supported)"));
  }
  TANDEM_ASSIGN_OR_RETURN(t->model, BpeModel::Parse(*model));
  if (const Json* n = FindField(j, "normalizer"); n != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(t->normalizer, ParseNormalizer(*n));
  }
  if (const Json* p = FindField(j, "pre_tokenizer"); p != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(t->pre_tokenizer, ParsePreTokenizer(*p));
  }
  if (const Json* d = FindField(j, "decoder"); d != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(t->decoder, ParseDecoder(*d));
  }
  static const Json kNull;
  const Json* post = FindField(j, "post_processor");
  TANDEM_ASSIGN_OR_RETURN(t->special, ParsePostProcessor(post != nullptr ? *post : kNull));
  TANDEM_ASSIGN_OR_RETURN(t->added, AddedVocabulary::Parse(FindField(j, "added_tokens"), *t->model,
                                                           t->normalizer.get()));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat(path, ": cannot open file"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(Cat(path, ": read error"));
  return ss.str();
}

absl::StatusOr<std::unique_ptr<TokenizerImpl>> Load(const std::string& tokenizer_json,
                                                    const std::string& config_json,
                                                    const std::string& tokenizer_file,
                                                    const std::string& config_file) {
  auto t = std::make_unique<TokenizerImpl>();
  TANDEM_ASSIGN_OR_RETURN(Json j, ParseJsonText(tokenizer_json, tokenizer_file));
  absl::Status s;
  try {
    s = ParseTokenizerJson(j, t.get());
  } catch (const std::exception& e) {  // defensive: accessors above never throw by design
    s = absl::InvalidArgumentError(e.what());
  }
  if (!s.ok()) return InFile(tokenizer_file, s);

  auto token_id = [&](const std::string& tok) -> std::optional<int32_t> {
    if (auto id = t->added->TokenToId(tok)) return id;
    return t->model->TokenToId(tok);
  };
  bool config_names_bos = false;
  if (!config_json.empty()) {
    TANDEM_ASSIGN_OR_RETURN(Json c, ParseJsonText(config_json, config_file));
    auto bos = ConfigToken(c, "bos_token");
    if (!bos.ok()) return InFile(config_file, bos.status());
    auto eos = ConfigToken(c, "eos_token");
    if (!eos.ok()) return InFile(config_file, eos.status());
    auto add_bos = GetBool(c, "add_bos_token", "add_bos_token", false);
    if (!add_bos.ok()) return InFile(config_file, add_bos.status());
    auto add_eos = GetBool(c, "add_eos_token", "add_eos_token", false);
    if (!add_eos.ok()) return InFile(config_file, add_eos.status());
    config_names_bos = c.contains("bos_token");
    if (bos->has_value()) {
      t->bos_token = **bos;
      t->bos_id = token_id(t->bos_token);
    }
    if (eos->has_value()) {
      t->eos_token = **eos;
      t->eos_id = token_id(t->eos_token);
    }
    // Without a post-processor, transformers 4's Llama-family tokenizers build the template
    // from add_bos_token / add_eos_token, and so does this class. With one, the tokenizer.json
    // template wins, as in transformers 5 (which drops these flags when tokenizer.json exists);
    // in real checkpoints the two agree.
    if (FindField(j, "post_processor") == nullptr) {
      if (*add_bos && t->bos_id) t->special.prefix = {*t->bos_id};
      if (*add_eos && t->eos_id) t->special.suffix = {*t->eos_id};
    }
  }
  if (!config_names_bos && !t->special.prefix.empty()) {
    t->bos_id = t->special.prefix.front();
    if (const std::string* s = t->added->ContentOf(*t->bos_id)) {
      t->bos_token = *s;
    } else if (const std::string* m = t->model->IdToToken(*t->bos_id)) {
      t->bos_token = *m;
    }
  }
  return t;
}

}  // namespace
}  // namespace tokenizer_internal

using tokenizer_internal::Piece;
using tokenizer_internal::TokenizerImpl;

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromDirectory(const std::string& dir) {
  const std::string tok_path = tokenizer_internal::Cat(dir, "/tokenizer.json");
  const std::string cfg_path = tokenizer_internal::Cat(dir, "/tokenizer_config.json");
  TANDEM_ASSIGN_OR_RETURN(std::string tok, tokenizer_internal::ReadFile(tok_path));
  std::string cfg;
  if (std::ifstream(cfg_path).good()) {
    TANDEM_ASSIGN_OR_RETURN(cfg, tokenizer_internal::ReadFile(cfg_path));
  }
  TANDEM_ASSIGN_OR_RETURN(auto impl, tokenizer_internal::Load(tok, cfg, tok_path, cfg_path));
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(
    const std::string& tokenizer_json, const std::string& tokenizer_config_json) {
  TANDEM_ASSIGN_OR_RETURN(
      auto impl, tokenizer_internal::Load(tokenizer_json, tokenizer_config_json, "tokenizer.json",
                                          "tokenizer_config.json"));
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::string valid;
  if (!tokenizer_internal::IsValidUtf8(text)) {
    valid = tokenizer_internal::Utf8Lossy(text);
    text = valid;
  }
  std::vector<Piece> pieces = impl_->added->Split(text, impl_->normalizer.get());
  if (impl_->pre_tokenizer != nullptr) impl_->pre_tokenizer->PreTokenize(&pieces);
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = impl_->special.prefix;
  for (const Piece& p : pieces) {
    if (p.id >= 0) {
      ids.push_back(p.id);
    } else {
      impl_->model->Tokenize(p.text, &ids);
    }
  }
  if (add_special_tokens) {
    ids.insert(ids.end(), impl_->special.suffix.begin(), impl_->special.suffix.end());
  }
  return ids;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* tok = impl_->added->IdToToken(id);
    if (tok == nullptr) tok = impl_->model->IdToToken(id);
    if (tok == nullptr) continue;
    if (skip_special_tokens && impl_->added->IsSpecialContent(*tok)) continue;
    tokens.push_back(*tok);
  }
  if (impl_->decoder == nullptr) return absl::StrJoin(tokens, " ");
  return impl_->decoder->Decode(std::move(tokens));
}

int32_t Tokenizer::vocab_size() const {
  return std::max(impl_->model->max_id(), impl_->added->max_id()) + 1;
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (auto id = impl_->added->TokenToId(token)) return id;
  return impl_->model->TokenToId(token);
}

std::string Tokenizer::IdToToken(int32_t id) const {
  if (const std::string* s = impl_->added->IdToToken(id)) return *s;
  if (const std::string* s = impl_->model->IdToToken(id)) return *s;
  return "";
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }
std::string Tokenizer::bos_token() const { return impl_->bos_token; }
std::string Tokenizer::eos_token() const { return impl_->eos_token; }

bool Tokenizer::add_bos() const {
  return impl_->bos_id.has_value() && !impl_->special.prefix.empty() &&
         impl_->special.prefix.front() == *impl_->bos_id;
}

bool Tokenizer::IsSpecial(int32_t id) const { return impl_->added->IsSpecialId(id); }

}  // namespace tandem
