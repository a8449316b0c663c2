// The gRPC Inference API (coordinator/serving/inference_service.h) over real gRPC, on a fixture
// model with the CPU engine: Generate streams what the same request gives alone; Tokenize and
// ModelInfo describe the model; bad requests are INVALID_ARGUMENT; a cancelled call or one past
// its deadline stops its request and frees its cache; before the model is loaded every call is
// UNAVAILABLE and grpc.health.v1 reports NOT_SERVING.
#include "coordinator/serving/inference_service.h"

#include <grpcpp/grpcpp.h>

#include "coordinator/generator.h"
#include "coordinator/loaded_model.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "kernels/cpu/isa.h"
#include "tests/fixture_paths.h"
#include "tests/serving_test_support.h"
#include "tests/slow_engine.h"

namespace tandem {
namespace {

class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = testing::LoadServingFixture(96);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<LoadedModel>(std::move(*model));
    slow_ = std::make_unique<testing::SlowEngine>(*model_->engine);
    SchedulerOptions so;
    so.max_model_len = model_->max_model_len;
    scheduler_ = std::make_unique<Scheduler>(*slow_, model_->tokenizer.get(), so, nullptr);
    scheduler_->Start();
    auto config = LoadChatTemplateConfig(model_->dir);
    ASSERT_TRUE(config.ok()) << config.status();
    chat_config_ = *config;
    auto parsed = ChatTemplate::Parse(chat_config_.chat_template);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    chat_template_.emplace(std::move(*parsed));
    auto server = GrpcInferenceServer::Start("127.0.0.1:0", slot_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Inference::NewStub(channel_);
  }

  void Ready() {
    ServedModel served;
    served.name = "fixture";
    served.tokenizer = model_->tokenizer.get();
    served.config = &model_->config;
    served.max_model_len = model_->max_model_len;
    served.chat_template = &*chat_template_;
    served.chat_config = &chat_config_;
    served.device = "cpu";
    slot_.Set({scheduler_.get(), served, nullptr});
    server_->SetServing(true);
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Health() {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service("tandem.v1.Inference");
    grpc::health::v1::HealthCheckResponse response;
    EXPECT_TRUE(health->Check(&context, request, &response).ok());
    return response.status();
  }

  struct Result {
    grpc::Status status;
    std::string text, finish_reason;
    std::vector<int32_t> ids;
    int64_t completion_tokens = 0;
  };
  Result Generate(const v1::GenerateRequest& request, grpc::ClientContext* context = nullptr,
                  int cancel_after = 0) {
    grpc::ClientContext own;
    if (!context) context = &own;
    auto reader = stub_->Generate(context, request);
    Result r;
    v1::GenerateResponse response;
    int messages = 0;
    while (reader->Read(&response)) {
      r.text += response.text();
      r.ids.insert(r.ids.end(), response.token_ids().begin(), response.token_ids().end());
      if (!response.finish_reason().empty()) {
        r.finish_reason = response.finish_reason();
        r.completion_tokens = response.usage().completion_tokens();
      }
      if (cancel_after > 0 && ++messages == cancel_after) context->TryCancel();
    }
    r.status = reader->Finish();
    return r;
  }

  void ExpectIdle() {
    EXPECT_TRUE(scheduler_->WaitIdle(absl::Seconds(10)));
    EXPECT_EQ(scheduler_->Snapshot().cached_tokens, 0);
  }

  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<testing::SlowEngine> slow_;
  std::unique_ptr<Scheduler> scheduler_;
  ChatTemplateConfig chat_config_;
  std::optional<ChatTemplate> chat_template_;
  BackendSlot slot_;
  std::unique_ptr<GrpcInferenceServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

TEST_F(InferenceServiceTest, UnavailableUntilTheModelIsLoaded) {
  EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  v1::GenerateRequest request;
  request.add_prompt_ids(5);
  EXPECT_EQ(Generate(request).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  grpc::ClientContext context;
  v1::ModelInfoResponse info;
  EXPECT_EQ(stub_->ModelInfo(&context, v1::ModelInfoRequest(), &info).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  Ready();
  EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(InferenceServiceTest, GenerateStreamsWhatTheRequestGivesAlone) {
  Ready();
  for (const char* prompt : {"Hello there", "The quick brown fox"}) {
    v1::GenerateRequest request;
    request.set_prompt(prompt);
    request.set_max_tokens(12);
    request.set_ignore_eos(true);
    GenerateRequest alone;
    alone.prompt_ids = model_->tokenizer->Encode(prompt, true);
    alone.max_tokens = 12;
    alone.ignore_eos = true;
    auto want = tandem::Generate(*model_->engine, model_->tokenizer.get(), model_->max_model_len,
                                 alone);
    ASSERT_TRUE(want.ok());
    Result got = Generate(request);
    ASSERT_TRUE(got.status.ok()) << got.status.error_message();
    EXPECT_EQ(got.ids, want->ids);
    EXPECT_EQ(got.text, want->text);
    EXPECT_EQ(got.finish_reason, "length");
    EXPECT_EQ(got.completion_tokens, 12);
  }
  // A chat, and seeded sampling: the same twice.
  v1::GenerateRequest chat;
  v1::ChatMessage* m = chat.add_messages();
  m->set_role("user");
  m->set_content("Hi!");
  chat.set_max_tokens(6);
  chat.mutable_sampling()->set_temperature(0.9);
  chat.mutable_sampling()->set_seed(7);
  Result a = Generate(chat), b = Generate(chat);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.ids, b.ids);
  ExpectIdle();
}

TEST_F(InferenceServiceTest, TokenizeAndModelInfoDescribeTheModel) {
  Ready();
  grpc::ClientContext c1;
  v1::TokenizeRequest request;
  request.set_text("Hello world");
  request.set_add_special_tokens(true);
  v1::TokenizeResponse ids;
  ASSERT_TRUE(stub_->Tokenize(&c1, request, &ids).ok());
  EXPECT_EQ(std::vector<int32_t>(ids.ids().begin(), ids.ids().end()),
            model_->tokenizer->Encode("Hello world", true));
  grpc::ClientContext c2;
  v1::ModelInfoResponse info;
  ASSERT_TRUE(stub_->ModelInfo(&c2, v1::ModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.name(), "fixture");
  EXPECT_EQ(info.model_type(), "qwen3_moe");
  EXPECT_EQ(info.vocab_size(), model_->config.vocab_size);
  EXPECT_EQ(info.max_model_len(), 96);
  EXPECT_TRUE(info.has_chat_template());
}

TEST_F(InferenceServiceTest, BadRequestsAreInvalidArgument) {
  Ready();
  std::vector<v1::GenerateRequest> bad(6);
  // bad[0]: no prompt at all.
  bad[1].set_prompt("x");
  bad[1].add_prompt_ids(3);  // two prompts
  bad[2].add_prompt_ids(-1);
  bad[3].add_prompt_ids(static_cast<int32_t>(model_->config.vocab_size));
  bad[4].add_prompt_ids(3);
  bad[4].set_max_tokens(-2);
  bad[5].add_messages()->set_role("wizard");
  for (size_t i = 0; i < bad.size(); ++i)
    EXPECT_EQ(Generate(bad[i]).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << i;
  v1::GenerateRequest too_long;
  for (int i = 0; i < 97; ++i) too_long.add_prompt_ids(5);
  EXPECT_EQ(Generate(too_long).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(InferenceServiceTest, CancellationAndDeadlinesFreeTheRequest) {
  Ready();
  v1::GenerateRequest request;
  request.add_prompt_ids(5);
  request.add_prompt_ids(6);
  request.set_max_tokens(80);  // 400 ms at least on the slowed engine
  request.set_ignore_eos(true);
  grpc::ClientContext cancelled;
  Result r = Generate(request, &cancelled, /*cancel_after=*/3);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_LT(r.ids.size(), 80u);
  ExpectIdle();
  grpc::ClientContext short_deadline;
  short_deadline.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(60));
  r = Generate(request, &short_deadline);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ExpectIdle();
}

}  // namespace
}  // namespace tandem
