// Continuous batching (coordinator/serving/scheduler.h) on a fixture model with the CPU engine:
// concurrent requests of mixed lengths, joining while others decode and prefilling in chunks,
// each produce exactly what the same request produces alone; cancelled and timed-out requests end
// at once with their caches freed; a full queue, a draining server and bad requests are refused
// with the right codes; stop strings end the text.
#include "coordinator/serving/scheduler.h"

#include <thread>

#include "coordinator/generator.h"
#include "coordinator/loaded_model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/isa.h"
#include "tests/fixture_paths.h"
#include "tests/serving_test_support.h"
#include "tests/slow_engine.h"

namespace tandem {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = testing::LoadServingFixture(64);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<LoadedModel>(std::move(*model));
  }

  SchedulerOptions Options() {
    SchedulerOptions o;
    o.max_model_len = model_->max_model_len;
    o.max_num_seqs = 5;
    o.max_batch_tokens = 12;  // small, so long prompts prefill over several steps
    return o;
  }

  ServeRequest Request(int i) {
    ServeRequest r;
    r.id = absl::StrCat("r", i);
    for (int t = 0; t < 3 + (i * 7) % 17; ++t) r.prompt_ids.push_back((i * 31 + t * 13) % 97 + 1);
    r.max_tokens = 4 + (i * 5) % 11;
    r.ignore_eos = i % 3 == 0;
    if (i % 4 == 1) {  // seeded sampling: the same draws as alone
      r.sampling.temperature = 0.8;
      r.sampling.top_p = 0.9;
      r.sampling.seed = 1000 + i;
    }
    return r;
  }

  // The request run alone through the one-sequence generation loop.
  GenerateResult Alone(const ServeRequest& r) {
    GenerateRequest g;
    g.prompt_ids = r.prompt_ids;
    g.max_tokens = r.max_tokens;
    g.sampling = r.sampling;
    g.ignore_eos = r.ignore_eos;
    auto result = Generate(*model_->engine, model_->tokenizer.get(), model_->max_model_len, g);
    EXPECT_TRUE(result.ok()) << result.status();
    return *result;
  }

  struct Collected {
    std::vector<int32_t> ids;
    std::string text, finish_reason;
    absl::Status error;
    TokenUsage usage;
  };
  static Collected Drain(RequestStream& stream, absl::Duration limit = absl::Seconds(60)) {
    Collected c;
    const absl::Time end = absl::Now() + limit;
    while (absl::Now() < end) {
      for (RequestEvent& e : stream.Next(absl::Milliseconds(100))) {
        c.ids.insert(c.ids.end(), e.token_ids.begin(), e.token_ids.end());
        c.text += e.text;
        if (e.last()) {
          c.finish_reason = e.finish_reason;
          c.error = e.error;
          c.usage = e.usage;
          return c;
        }
      }
    }
    c.error = absl::DeadlineExceededError("the request never finished");
    return c;
  }

  std::unique_ptr<LoadedModel> model_;
};

TEST_F(SchedulerTest, ConcurrentRequestsEqualTheSameRequestsAlone) {
  constexpr int kRequests = 14;
  std::vector<GenerateResult> alone;
  for (int i = 0; i < kRequests; ++i) alone.push_back(Alone(Request(i)));
  Scheduler scheduler(*model_->engine, model_->tokenizer.get(), Options(), nullptr);
  scheduler.Start();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < kRequests; ++i) {
    auto s = scheduler.Submit(Request(i));
    ASSERT_TRUE(s.ok()) << s.status();
    streams.push_back(*s);
    if (i % 4 == 3) absl::SleepFor(absl::Milliseconds(5));  // later ones join a running batch
  }
  for (int i = 0; i < kRequests; ++i) {
    Collected c = Drain(*streams[i]);
    ASSERT_TRUE(c.error.ok()) << i << ": " << c.error;
    EXPECT_EQ(c.ids, alone[i].ids) << "request " << i;
    EXPECT_EQ(c.text, alone[i].text) << "request " << i;
    EXPECT_EQ(c.finish_reason, alone[i].finish_reason) << "request " << i;
    EXPECT_EQ(c.usage.completion_tokens, static_cast<int64_t>(alone[i].ids.size()));
    EXPECT_EQ(c.usage.prompt_tokens, static_cast<int64_t>(Request(i).prompt_ids.size()));
  }
  EXPECT_TRUE(scheduler.WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(scheduler.Snapshot().cached_tokens, 0);
}

TEST_F(SchedulerTest, CancelledAndTimedOutRequestsEndAndFreeTheirCaches) {
  testing::SlowEngine slow_engine(*model_->engine);
  Scheduler scheduler(slow_engine, model_->tokenizer.get(), Options(), nullptr);
  scheduler.Start();
  ServeRequest long_one = Request(0);
  long_one.max_tokens = 50;  // 250 ms at least
  long_one.ignore_eos = true;
  auto cancelled = scheduler.Submit(long_one);
  ServeRequest slow = long_one;
  slow.timeout = absl::Milliseconds(1);
  auto timed_out = scheduler.Submit(slow);
  auto kept = scheduler.Submit(Request(2));
  ASSERT_TRUE(cancelled.ok() && timed_out.ok() && kept.ok());
  // Cancel after the first tokens arrive.
  std::vector<RequestEvent> first;
  while (first.empty()) first = (*cancelled)->Next(absl::Seconds(10));
  (*cancelled)->Cancel();
  Collected c = Drain(**cancelled);
  EXPECT_EQ(c.finish_reason, "cancelled");
  EXPECT_LT(c.usage.completion_tokens, 50);
  EXPECT_EQ(Drain(**timed_out).finish_reason, "timeout");
  Collected k = Drain(**kept);
  EXPECT_EQ(k.ids, Alone(Request(2)).ids);
  EXPECT_TRUE(scheduler.WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(scheduler.Snapshot().cached_tokens, 0);
  EXPECT_EQ(scheduler.Snapshot().running, 0);
}

TEST_F(SchedulerTest, BadRequestsFullQueuesAndDrainingAreRefused) {
  SchedulerOptions o = Options();
  o.max_waiting = 2;
  Scheduler scheduler(*model_->engine, model_->tokenizer.get(), o, nullptr);
  // Not started: nothing leaves the queue.
  ServeRequest r = Request(1);
  r.prompt_ids.clear();
  EXPECT_EQ(scheduler.Submit(r).status().code(), absl::StatusCode::kInvalidArgument);
  r = Request(1);
  r.max_tokens = -1;
  EXPECT_EQ(scheduler.Submit(r).status().code(), absl::StatusCode::kInvalidArgument);
  r = Request(1);
  r.prompt_ids.assign(model_->max_model_len + 1, 5);
  EXPECT_EQ(scheduler.Submit(r).status().code(), absl::StatusCode::kInvalidArgument);
  r = Request(1);
  r.prompt_ids.push_back(static_cast<int32_t>(model_->config.vocab_size));
  EXPECT_EQ(scheduler.Submit(r).status().code(), absl::StatusCode::kInvalidArgument);
  r = Request(1);
  r.sampling.top_p = 0;
  EXPECT_EQ(scheduler.Submit(r).status().code(), absl::StatusCode::kInvalidArgument);
  auto a = scheduler.Submit(Request(1)), b = scheduler.Submit(Request(2));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(scheduler.Submit(Request(3)).status().code(), absl::StatusCode::kResourceExhausted);
  scheduler.Start();
  scheduler.BeginDrain();
  EXPECT_EQ(scheduler.Submit(Request(4)).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(Drain(**a).error.ok());
  EXPECT_TRUE(Drain(**b).error.ok());
  EXPECT_TRUE(scheduler.WaitIdle(absl::Seconds(5)));
}

// With a bounded KV cache (as on the GPU), requests join only while the cache has room for all of
// their prompt and max_tokens; each still gives what it gives alone, and one that could never fit
// is refused at once.
TEST_F(SchedulerTest, ABoundedKvCacheLimitsAdmissionNotResults) {
  // 48 tokens in pages of 16: three requests of up to 16 tokens at a time.
  testing::SlowEngine bounded(*model_->engine, absl::Milliseconds(1), 48, 16);
  Scheduler scheduler(bounded, model_->tokenizer.get(), Options(), nullptr);
  scheduler.Start();
  ServeRequest too_big = Request(0);
  too_big.max_tokens = 60;  // 63 tokens of cache
  EXPECT_EQ(scheduler.Submit(too_big).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<ServeRequest> requests;
  for (int i = 0; i < 6; ++i) {
    ServeRequest r = Request(i);
    r.prompt_ids.resize(std::min<size_t>(r.prompt_ids.size(), 12));
    r.max_tokens = 4;
    requests.push_back(r);
    auto s = scheduler.Submit(r);
    ASSERT_TRUE(s.ok()) << s.status();
    streams.push_back(*s);
  }
  int64_t most_running = 0;
  for (int i = 0; i < 6; ++i) {
    Collected c;
    while (c.finish_reason.empty() && c.error.ok()) {
      most_running = std::max(most_running, scheduler.Snapshot().running);
      for (RequestEvent& e : streams[i]->Next(absl::Milliseconds(5))) {
        c.ids.insert(c.ids.end(), e.token_ids.begin(), e.token_ids.end());
        if (e.last()) {
          c.finish_reason = e.finish_reason;
          c.error = e.error;
        }
      }
    }
    ASSERT_TRUE(c.error.ok()) << c.error;
    EXPECT_EQ(c.ids, Alone(requests[i]).ids) << "request " << i;
  }
  EXPECT_LE(most_running, 3);
  EXPECT_TRUE(scheduler.WaitIdle(absl::Seconds(5)));
}

TEST_F(SchedulerTest, StopStringsEndTheText) {
  ServeRequest r = Request(0);
  r.max_tokens = 24;
  r.ignore_eos = true;
  const GenerateResult alone = Alone(r);
  ASSERT_GE(alone.text.size(), 4u) << "the fixture's text is too short to cut";
  // Stop at a piece of the text the request produces alone.
  const std::string stop = alone.text.substr(alone.text.size() / 2, 2);
  r.stop = {stop};
  Scheduler scheduler(*model_->engine, model_->tokenizer.get(), Options(), nullptr);
  scheduler.Start();
  auto s = scheduler.Submit(r);
  ASSERT_TRUE(s.ok());
  Collected c = Drain(**s);
  EXPECT_EQ(c.finish_reason, "stop");
  EXPECT_EQ(c.text, alone.text.substr(0, alone.text.find(stop)));
}

TEST_F(SchedulerTest, DestroyingTheSchedulerEndsWhatIsLeft) {
  std::shared_ptr<RequestStream> stream;
  testing::SlowEngine slow_engine(*model_->engine);
  {
    Scheduler scheduler(slow_engine, model_->tokenizer.get(), Options(), nullptr);
    ServeRequest r = Request(0);
    r.max_tokens = 60;
    r.ignore_eos = true;
    auto s = scheduler.Submit(r);
    ASSERT_TRUE(s.ok());
    stream = *s;
    scheduler.Start();
  }
  EXPECT_EQ(Drain(*stream, absl::Seconds(5)).finish_reason, "cancelled");
}

}  // namespace
}  // namespace tandem
