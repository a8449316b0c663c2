// The OpenAI HTTP server over a fixture model with 2 expert worker processes, through real HTTP:
// 64 concurrent streaming requests of mixed lengths, some dropped by their client midway: every
// completed greedy response equals the same request run alone, nothing hangs, and the running
// requests, cached tokens and the process's memory return to their baseline. Bad requests
// (malformed JSON, missing fields, wrong types, negative max_tokens, a prompt longer than the
// context, invalid UTF-8, an unknown model or route) each get a 4xx with OpenAI's error shape,
// and the server stays healthy.
#include <httplib.h>

#include <signal.h>

#include <fstream>
#include <thread>

#include "bench/serve_load.h"
#include "coordinator/generator.h"
#include "coordinator/loaded_model.h"
#include "coordinator/serving/openai_server.h"
#include "coordinator/serving/scheduler.h"
#include "gtest/gtest.h"
#include "kernels/cpu/isa.h"
#include "tests/fixture_paths.h"
#include "tests/serving_test_support.h"

namespace tandem {
namespace {

using nlohmann::json;

// Resident memory of this process, in bytes (from /proc/self/statm).
int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * 4096;
}

class OpenAiServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = testing::LoadServingFixture(96, /*workers=*/2);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = new LoadedModel(std::move(*model));
    SchedulerOptions so;
    so.max_model_len = model_->max_model_len;
    so.max_num_seqs = 16;
    so.max_batch_tokens = 48;
    so.max_waiting = 128;
    scheduler_ = new Scheduler(*model_->engine, model_->tokenizer.get(), so, &metrics_);
    scheduler_->Start();
    server_ = new OpenAiServer(slot_, metrics_, 160);
    ASSERT_TRUE(server_->Start("127.0.0.1", 0).ok());
    ServedModel served;
    served.name = "fixture";
    served.tokenizer = model_->tokenizer.get();
    served.max_model_len = model_->max_model_len;
    slot_.Set({scheduler_, served, [] { return scheduler_->WorkerHealth(); }});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete scheduler_;
    delete model_;
  }

  static httplib::Client Client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    return c;
  }

  static std::vector<int32_t> Prompt(int i) {
    std::vector<int32_t> ids;
    for (int t = 0; t < 2 + (i * 11) % 29; ++t) ids.push_back((i * 37 + t * 17) % 97 + 3);
    return ids;
  }
  static int64_t MaxTokens(int i) { return 3 + (i * 7) % 19; }

  // What the same request gives alone: the one-sequence generation loop over the same engine.
  static std::string Alone(int i) {
    GenerateRequest g;
    g.prompt_ids = Prompt(i);
    g.max_tokens = MaxTokens(i);
    auto r = Generate(*model_->engine, model_->tokenizer.get(), model_->max_model_len, g);
    EXPECT_TRUE(r.ok()) << r.status();
    return r->text;
  }

  // Streams request i; `drop_after` > 0: the client hangs up after that many events.
  struct Streamed {
    std::string text, finish_reason;
    bool done = false;  // saw data: [DONE]
    int events = 0;
    std::string error;  // the client's, if the exchange failed
  };
  static Streamed Stream(int i, int drop_after) {
    json body = {{"model", "fixture"},     {"prompt", Prompt(i)},  {"max_tokens", MaxTokens(i)},
                 {"temperature", 0},        {"stream", true}};
    Streamed out;
    httplib::Client c = Client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    bench::SseDataSplitter sse;
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      return sse.Feed(data, n, [&](const std::string& payload) {
        if (payload == "[DONE]") {
          out.done = true;
          return true;
        }
        json chunk = json::parse(payload);
        out.text += chunk["choices"][0]["text"].get<std::string>();
        if (!chunk["choices"][0]["finish_reason"].is_null())
          out.finish_reason = chunk["choices"][0]["finish_reason"].get<std::string>();
        ++out.events;
        return drop_after == 0 || out.events < drop_after;  // false: hang up
      });
    };
    auto res = c.send(req);
    if (!res) out.error = httplib::to_string(res.error());
    return out;
  }

  static void ExpectHealthy() {
    auto res = Client().Get("/health");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
  }

  static void ExpectIdle() {
    EXPECT_TRUE(scheduler_->WaitIdle(absl::Seconds(30)));
    const SchedulerSnapshot s = scheduler_->Snapshot();
    EXPECT_EQ(s.running, 0);
    EXPECT_EQ(s.waiting, 0);
    EXPECT_EQ(s.cached_tokens, 0);
  }

  static inline LoadedModel* model_ = nullptr;
  static inline ServingMetrics metrics_;
  static inline BackendSlot slot_;
  static inline Scheduler* scheduler_ = nullptr;
  static inline OpenAiServer* server_ = nullptr;
};

TEST_F(OpenAiServerTest, ConcurrentStreamsEqualRequestsAloneAndResourcesReturn) {
  constexpr int kRequests = 64;
  std::vector<std::string> alone(kRequests);
  for (int i = 0; i < kRequests; ++i) alone[i] = Alone(i);
  // One round to warm up allocations, then the measured round.
  for (int round = 0; round < 2; ++round) {
    const int64_t before = ResidentBytes();
    std::vector<Streamed> got(kRequests);
    std::vector<std::thread> clients;
    for (int i = 0; i < kRequests; ++i)
      clients.emplace_back([&, i] { got[i] = Stream(i, i % 8 == 5 ? 2 : 0); });
    for (std::thread& t : clients) t.join();
    int completed = 0, dropped = 0;
    for (int i = 0; i < kRequests; ++i) {
      if (i % 8 == 5) {
        ++dropped;
        continue;
      }
      ++completed;
      EXPECT_TRUE(got[i].done) << "request " << i << " never ended: " << got[i].error << " after " << got[i].events << " events, text so far " << got[i].text.size() << " bytes";
      EXPECT_EQ(got[i].text, alone[i]) << "request " << i;
      EXPECT_EQ(got[i].finish_reason, "length") << "request " << i;
    }
    ExpectIdle();
    ExpectHealthy();
    const int64_t growth = ResidentBytes() - before;
    std::printf("[ server ] round %d: %d streams completed, %d dropped midway; RSS %+.1f MiB\n",
                round, completed, dropped, growth / 1048576.0);
    if (round == 1) {
      EXPECT_LT(growth, 32 << 20) << "memory did not return to its baseline";
    }
  }
  const std::string metrics = Client().Get("/metrics")->body;
  const std::string abort_series =
      "tandem:request_success_total{finished_reason=\"abort\",model_name=\"fixture\"} ";
  const size_t at = metrics.find(abort_series);
  ASSERT_NE(at, std::string::npos) << metrics;
  const int aborted = std::stoi(metrics.substr(at + abort_series.size()));
  std::printf("[ server ] %d of the 16 dropped streams were cancelled before they finished\n",
              aborted);
  EXPECT_GE(aborted, 1) << "no dropped client cancelled its request";
  EXPECT_NE(metrics.find("tandem:worker_up{worker=\"1\",model_name=\"fixture\"} 1"),
            std::string::npos)
      << metrics;
}

TEST_F(OpenAiServerTest, BadRequestsGet4xxWithTheErrorShapeAndTheServerStaysHealthy) {
  const std::string long_prompt = json({{"prompt", std::vector<int>(200, 5)}}).dump();
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"/v1/completions", "{not json"},
      {"/v1/completions", "[1, 2]"},
      {"/v1/completions", R"({"max_tokens": 4})"},                    // no prompt
      {"/v1/completions", R"({"prompt": 42})"},                       // wrong type
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": -1})"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": "ten"})"},
      {"/v1/completions", R"({"prompt": "hi", "temperature": 9})"},
      {"/v1/completions", R"({"prompt": "hi", "n": 2})"},
      {"/v1/completions", R"({"prompt": "hi", "stream": "yes"})"},
      {"/v1/completions", R"({"prompt": "hi", "model": "other"})"},   // 404
      {"/v1/completions", R"({"prompt": [1, -5]})"},
      {"/v1/completions", R"({"prompt": [1, 99999999]})"},           // outside the vocabulary
      {"/v1/completions", long_prompt},
      {"/v1/completions", "{\"prompt\": \"bad \xff\xfe utf-8\"}"},
      {"/v1/chat/completions", R"({"messages": "hello"})"},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})"},
      {"/v1/chat/completions", R"({"messages": []})"},
      {"/v1/nothing", "{}"},
  };
  for (const auto& [path, body] : bad) {
    auto res = Client().Post(path, body, "application/json");
    ASSERT_TRUE(res) << path << " " << body;
    EXPECT_GE(res->status, 400) << body;
    EXPECT_LT(res->status, 500) << body;
    json error = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(error.is_object()) << res->body;
    ASSERT_TRUE(error.contains("error")) << res->body;
    EXPECT_TRUE(error["error"]["message"].is_string()) << res->body;
    EXPECT_TRUE(error["error"]["type"].is_string()) << res->body;
    EXPECT_TRUE(error["error"].contains("code")) << res->body;
    ExpectHealthy();
  }
  // And it still serves.
  auto res = Client().Post("/v1/completions", R"({"prompt": [5, 6, 7], "max_tokens": 3})",
                           "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["usage"]["completion_tokens"], 3);
}

// /health says 503 until the model is served, then follows the expert workers: 200, then 503
// naming the worker once one dies (requests
// meanwhile fail with 503 and the error shape), then 200 again once it is restarted at its address
// (the scheduler re-attaches it while idle), and requests are served again.
TEST(OpenAiServerHealth, ReportsADeadWorkerThenItsRestart) {
  auto workers = LocalWorkers::Spawn(2);  // as a launcher would: the server only knows addresses
  ASSERT_TRUE(workers.ok()) << workers.status();
  std::vector<std::string> addrs;
  for (const WorkerEndpoint& e : (*workers)->endpoints()) addrs.push_back(e.address);
  auto model = testing::LoadServingFixture(64, 0, addrs);
  ASSERT_TRUE(model.ok()) << model.status();
  SchedulerOptions so;
  so.max_model_len = model->max_model_len;
  so.worker_check_interval = absl::Milliseconds(100);
  ServingMetrics metrics;
  Scheduler scheduler(*model->engine, nullptr, so, &metrics);
  scheduler.Start();
  BackendSlot slot;
  OpenAiServer server(slot, metrics, 8);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(30, 0);
  const std::string request = R"({"prompt": [5, 6, 7], "max_tokens": 3})";
  // Before the model is handed over (`tandem serve` listens while it loads): 503.
  auto loading = client.Get("/health");
  ASSERT_TRUE(loading);
  EXPECT_EQ(loading->status, 503);
  EXPECT_NE(loading->body.find("loading"), std::string::npos) << loading->body;
  EXPECT_EQ(client.Post("/v1/completions", request, "application/json")->status, 503);
  ServedModel served;
  served.name = "fixture";
  served.max_model_len = model->max_model_len;
  slot.Set({&scheduler, served, [&scheduler] { return scheduler.WorkerHealth(); }});
  auto wait_for_health = [&](int status) {
    for (int i = 0; i < 150; ++i) {  // up to 15 s
      auto res = client.Get("/health");
      if (res && res->status == status) return res->body;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "/health never answered " << status;
    return std::string();
  };
  wait_for_health(200);
  ASSERT_EQ(kill((*workers)->endpoints()[1].pid, SIGKILL), 0);
  const std::string down = wait_for_health(503);
  EXPECT_NE(down.find("worker 1"), std::string::npos) << down;
  EXPECT_NE(client.Get("/metrics")->body.find("tandem:worker_up{worker=\"1\",model_name=\"fixture\"} 0"),
            std::string::npos);
  auto failed = client.Post("/v1/completions", request, "application/json");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, 503) << failed->body;
  EXPECT_TRUE(json::parse(failed->body).contains("error")) << failed->body;
  ASSERT_TRUE((*workers)->Restart(1).ok());
  wait_for_health(200);
  auto served_again = client.Post("/v1/completions", request, "application/json");
  ASSERT_TRUE(served_again);
  EXPECT_EQ(served_again->status, 200) << served_again->body;
  server.Stop();
}

}  // namespace
}  // namespace tandem
