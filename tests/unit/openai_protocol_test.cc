// The OpenAI wire format (coordinator/serving/openai_protocol.h) without a server: request fields
// and their defaults, the checks that name the offending field, and the JSON of responses, stream
// chunks and errors.
#include "coordinator/serving/openai_protocol.h"

#include "gtest/gtest.h"
#include "tests/fixture_paths.h"

namespace tandem {
namespace {

using nlohmann::json;

class OpenAiProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = absl::StrCat(testing::FixturesDir(), "/qwen3_moe");
    auto tokenizer = Tokenizer::FromDirectory(dir);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
    auto config = LoadChatTemplateConfig(dir);
    ASSERT_TRUE(config.ok()) << config.status();
    chat_config_ = *config;
    auto parsed = ChatTemplate::Parse(chat_config_.chat_template);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    chat_template_.emplace(std::move(*parsed));
    model_.name = std::string(1, 'm');  // (not = "m": GCC 12 warns falsely, bug 105329)
    model_.tokenizer = tokenizer_.get();
    model_.chat_template = &*chat_template_;
    model_.chat_config = &chat_config_;
    model_.max_model_len = 100;
  }

  absl::StatusOr<CompletionRequest> Parse(const json& body, bool chat = false) {
    return ParseCompletionRequest(body.dump(), chat, model_);
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  ChatTemplateConfig chat_config_;
  std::optional<ChatTemplate> chat_template_;
  ServedModel model_;
};

TEST_F(OpenAiProtocolTest, CompletionFieldsAndDefaults) {
  auto r = Parse({{"prompt", "Hello"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.prompt_ids, tokenizer_->Encode("Hello", true));
  EXPECT_EQ(r->request.max_tokens, 16);  // OpenAI's default for completions
  EXPECT_EQ(r->request.sampling.temperature, 1.0);
  EXPECT_FALSE(r->stream);
  EXPECT_EQ(r->model, "m");

  r = Parse({{"model", "m"}, {"prompt", {{1, 2, 3}}}, {"max_tokens", 5}, {"temperature", 0},
             {"top_p", 0.5}, {"top_k", -1}, {"min_p", 0.1}, {"repetition_penalty", 1.2},
             {"seed", 7}, {"stop", "END"}, {"stream", true},
             {"stream_options", {{"include_usage", true}}}, {"ignore_eos", true}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.prompt_ids, (std::vector<int32_t>{1, 2, 3}));  // a batch of one prompt
  EXPECT_EQ(r->request.max_tokens, 5);
  EXPECT_EQ(r->request.sampling.temperature, 0.0);
  EXPECT_EQ(r->request.sampling.top_p, 0.5);
  EXPECT_EQ(r->request.sampling.top_k, 0);  // -1: off, as in vLLM
  EXPECT_EQ(r->request.sampling.min_p, 0.1);
  EXPECT_EQ(r->request.sampling.repetition_penalty, 1.2);
  EXPECT_EQ(r->request.sampling.seed, 7u);
  EXPECT_EQ(r->request.stop, (std::vector<std::string>{"END"}));
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_TRUE(r->request.ignore_eos);

  // max_tokens beyond the context is clipped to what fits.
  r = Parse({{"prompt", {1, 2, 3}}, {"max_tokens", 1000}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->request.max_tokens, 98);
}

TEST_F(OpenAiProtocolTest, ChatRendersTheTemplateAndDefaultsToTheRestOfTheContext) {
  auto r = Parse({{"messages", {{{"role", "system"}, {"content", "Be brief."}},
                                {{"role", "user"},
                                 {"content", {{{"type", "text"}, {"text", "Hi "}},
                                              {{"type", "text"}, {"text", "there"}}}}}}}},
                 /*chat=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "system"}, {"content", "Be brief."}});
  messages.push_back({{"role", "user"}, {"content", "Hi there"}});
  auto want = ChatPromptIds(model_, messages);
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(r->request.prompt_ids, *want);
  EXPECT_EQ(r->request.max_tokens, 100 - static_cast<int64_t>(want->size()));
  auto capped = Parse({{"messages", {{{"role", "user"}, {"content", "x"}}}},
                       {"max_completion_tokens", 3}},
                      true);
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->request.max_tokens, 3);
}

TEST_F(OpenAiProtocolTest, BadFieldsAreNamed) {
  const std::vector<std::pair<json, std::string>> bad = {
      {{{"prompt", "x"}, {"max_tokens", 0}}, "max_tokens"},
      {{{"prompt", "x"}, {"temperature", "hot"}}, "temperature"},
      {{{"prompt", "x"}, {"top_p", 0}}, "top_p"},
      {{{"prompt", "x"}, {"top_k", -3}}, "top_k"},
      {{{"prompt", "x"}, {"n", 3}}, "n"},
      {{{"prompt", "x"}, {"seed", 1.5}}, "seed"},
      {{{"prompt", "x"}, {"stop", {1, 2}}}, "stop"},
      {{{"prompt", "x"}, {"stop", {"a", "b", "c", "d", "e"}}}, "stop"},
      {{{"prompt", "x"}, {"presence_penalty", 0.5}}, "presence_penalty"},
      {{{"prompt", "x"}, {"stream_options", {{"include_usage", true}}}}, "stream_options"},
      {{{"prompt", {1, "a"}}}, "prompt"},
      {{{"prompt", json::object()}}, "prompt"},
      {{{"prompt", ""}}, "prompt"},
      {{{"model", 3}, {"prompt", "x"}}, "model"},
  };
  for (const auto& [body, field] : bad) {
    auto r = Parse(body);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << body.dump();
    EXPECT_NE(r.status().message().find(field), std::string_view::npos)
        << body.dump() << ": " << r.status();
  }
  EXPECT_EQ(Parse({{"model", "other"}, {"prompt", "x"}}).status().code(),
            absl::StatusCode::kNotFound);
  auto too_long = Parse({{"prompt", std::vector<int>(101, 1)}});
  EXPECT_NE(too_long.status().message().find("maximum context length is 100"),
            std::string_view::npos)
      << too_long.status();
  EXPECT_EQ(ParseCompletionRequest("{\"prompt\": \"\xc3\x28\"}", false, model_).status().code(),
            absl::StatusCode::kInvalidArgument);  // invalid UTF-8
  model_.chat_template = nullptr;
  EXPECT_EQ(Parse({{"messages", {{{"role", "user"}, {"content", "x"}}}}}, true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(OpenAiProtocolTest, ResponsesChunksAndErrors) {
  auto chat = Parse({{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"stream", true},
                     {"stream_options", {{"include_usage", true}}}},
                    true);
  ASSERT_TRUE(chat.ok());
  json first = StreamChunk(*chat, "id1", 5, "Hel", "", true);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "Hel");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(first["usage"].is_null());
  json last = StreamChunk(*chat, "id1", 5, "", "cancelled", false);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "abort");
  EXPECT_FALSE(last["choices"][0]["delta"].contains("role"));
  json usage = UsageChunk(*chat, "id1", 5, {7, 3});
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 10);
  auto plain = Parse({{"prompt", "x"}});
  ASSERT_TRUE(plain.ok());
  json whole = CompletionResponse(*plain, "id2", 6, "text", "length", {2, 1});
  EXPECT_EQ(whole["object"], "text_completion");
  EXPECT_EQ(whole["choices"][0]["text"], "text");
  EXPECT_EQ(whole["choices"][0]["finish_reason"], "length");
  json error = ErrorBody(absl::ResourceExhaustedError("full"));
  EXPECT_EQ(HttpStatusFor(absl::ResourceExhaustedError("full")), 429);
  EXPECT_EQ(error["error"]["message"], "full");
  EXPECT_EQ(error["error"]["type"], "rate_limit_exceeded");
  EXPECT_EQ(error["error"]["code"], 429);
  EXPECT_EQ(HttpStatusFor(absl::UnavailableError("down")), 503);
  EXPECT_EQ(HttpStatusFor(absl::InvalidArgumentError("bad")), 400);
}

}  // namespace
}  // namespace tandem
