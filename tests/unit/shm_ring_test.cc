// Tests for the shared-memory ring (common/shm_ring*.h) within one process: layout, region
// creation / opening / validation, the request and response protocol, validation of every
// header field, timeouts, the liveness check, depth-2 pipelining and the futex sleep path.
// Corruptions are written straight into the mapping, as a misbehaving peer would.
#include "common/shm_ring.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/shm_ring_layout.h"
#include "common/shm_ring_region.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr absl::Duration kLong = absl::Seconds(10);

RingCapacity SmallCapacity() {
  RingCapacity c;
  c.depth = 2;
  c.max_tokens = 8;
  c.hidden_size = 16;
  c.max_top_k = 4;
  return c;
}

std::unique_ptr<RingRegion> MustCreate(const RingCapacity& capacity = SmallCapacity()) {
  absl::StatusOr<std::unique_ptr<RingRegion>> region = RingRegion::Create("unit", capacity);
  EXPECT_TRUE(region.ok()) << region.status();
  return region.ok() ? std::move(*region) : nullptr;
}

bool ShmExists(const std::string& name) {
  return std::filesystem::exists(std::filesystem::path("/dev/shm") / name.substr(1));
}

RingRegionHeader* Header(RingRegion& region) {
  return reinterpret_cast<RingRegionHeader*>(region.base());
}
RingRequestLine* RequestLineOf(RingRegion& region, uint32_t slot) {
  return reinterpret_cast<RingRequestLine*>(region.slot(slot) + region.layout().request_line);
}
RingResponseLine* ResponseLineOf(RingRegion& region, uint32_t slot) {
  return reinterpret_cast<RingResponseLine*>(region.slot(slot) + region.layout().response_line);
}

// A request of T tokens whose payload depends on `salt`, with storage it owns.
struct TestRequest {
  std::vector<float> hidden;
  std::vector<int32_t> ids;
  std::vector<float> weights;
  RingRequest request;

  TestRequest(const RingCapacity& cap, int64_t tokens, int64_t top_k, int salt, int32_t layer = 0,
              uint32_t flags = 0) {
    hidden.resize(tokens * cap.hidden_size);
    ids.resize(tokens * top_k);
    weights.resize(tokens * top_k);
    for (size_t i = 0; i < hidden.size(); ++i) hidden[i] = static_cast<float>(salt * 1000 + i);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(salt + i);
    for (size_t i = 0; i < weights.size(); ++i) weights[i] = 0.25f * static_cast<float>(i + 1);
    request.layer = layer;
    request.num_tokens = tokens;
    request.top_k = top_k;
    request.hidden = hidden.data();
    request.expert_ids = ids.data();
    request.weights = weights.data();
    request.flags = flags;
  }
};

// The consumer's "computation" in these tests: result = hidden * 2 + layer.
void Answer(RingConsumer& consumer, const RingRequestView& view, int64_t hidden_size) {
  for (int64_t i = 0; i < view.num_tokens * hidden_size; ++i) {
    view.result[i] = view.hidden[i] * 2.0f + static_cast<float>(view.layer);
  }
  ASSERT_TRUE(consumer.Complete(view.seq, absl::OkStatus()).ok());
}

void ExpectAnswered(const TestRequest& req, const std::vector<float>& out) {
  ASSERT_EQ(out.size(), req.hidden.size());
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(out[i], req.hidden[i] * 2.0f + static_cast<float>(req.request.layer)) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Layout

TEST(ShmRingLayoutTest, OffsetsAreAlignedAndDisjoint) {
  RingCapacity c = SmallCapacity();
  c.max_tokens = 7;
  c.hidden_size = 13;
  c.max_top_k = 3;
  absl::StatusOr<RingSlotLayout> layout = ComputeSlotLayout(c);
  ASSERT_TRUE(layout.ok()) << layout.status();
  const uint64_t offsets[] = {layout->request_line, layout->response_line, layout->error_text,
                              layout->hidden,       layout->expert_ids,    layout->weights,
                              layout->result};
  for (uint64_t o : offsets) EXPECT_EQ(o % kRingCacheLine, 0u);
  EXPECT_EQ(layout->response_line - layout->request_line, kRingCacheLine);
  EXPECT_GE(layout->expert_ids - layout->hidden, 7u * 13 * 4);
  EXPECT_GE(layout->weights - layout->expert_ids, 7u * 3 * 4);
  EXPECT_GE(layout->result - layout->weights, 7u * 3 * 4);
  EXPECT_GE(layout->stride - layout->result, 7u * 13 * 4);
  EXPECT_EQ(layout->stride % kRingSlotAlign, 0u);
  EXPECT_EQ(RingRegionBytes(c, *layout), kRingHeaderBytes + 2 * layout->stride);
}

TEST(ShmRingLayoutTest, CapacityLimits) {
  RingCapacity c = SmallCapacity();
  c.depth = 1;
  EXPECT_THAT(ValidateCapacity(c).message(), HasSubstr("depth = 1"));
  c = SmallCapacity();
  c.depth = kRingMaxDepth + 1;
  EXPECT_EQ(ValidateCapacity(c).code(), absl::StatusCode::kInvalidArgument);
  c = SmallCapacity();
  c.max_tokens = 0;
  EXPECT_THAT(ValidateCapacity(c).message(), HasSubstr("max_tokens"));
  c = SmallCapacity();
  c.hidden_size = kRingMaxHidden + 1;
  EXPECT_THAT(ValidateCapacity(c).message(), HasSubstr("hidden_size"));
  c = SmallCapacity();
  c.max_top_k = 0;
  EXPECT_THAT(ValidateCapacity(c).message(), HasSubstr("max_top_k"));
  c = SmallCapacity();
  c.dtype = static_cast<RingDType>(7);
  EXPECT_THAT(ValidateCapacity(c).message(), HasSubstr("dtype 7"));
  EXPECT_TRUE(ValidateCapacity(SmallCapacity()).ok());
}

// ---------------------------------------------------------------------------------------------
// Region lifecycle

TEST(ShmRingRegionTest, CreateNamesMapsAndUnlinks) {
  std::unique_ptr<RingRegion> region = MustCreate();
  ASSERT_NE(region, nullptr);
  EXPECT_THAT(region->name(),
              MatchesRegex(absl::StrCat("/tandem-", getpid(), "-unit-[0-9a-f]{16}")));
  EXPECT_TRUE(region->is_creator());
  EXPECT_TRUE(ShmExists(region->name()));
  const RingSpec& spec = region->spec();
  EXPECT_EQ(spec.magic, kRingMagic);
  EXPECT_EQ(spec.layout_version, kRingLayoutVersion);
  EXPECT_EQ(spec.size, RingRegionBytes(spec.capacity, region->layout()));
  EXPECT_EQ(Header(*region)->magic, kRingMagic);
  EXPECT_EQ(Header(*region)->max_tokens, 8u);

  absl::StatusOr<std::unique_ptr<RingRegion>> opened = RingRegion::Open(spec);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_FALSE((*opened)->is_creator());
  EXPECT_EQ((*opened)->Unlink().code(), absl::StatusCode::kFailedPrecondition);

  // Both mappings see the same memory, also after the name is gone.
  ASSERT_TRUE(region->Unlink().ok());
  ASSERT_TRUE(region->Unlink().ok());  // idempotent
  EXPECT_FALSE(ShmExists(spec.name));
  region->slot(1)[100] = 42;
  EXPECT_EQ((*opened)->slot(1)[100], 42);
  EXPECT_EQ(RingRegion::Open(spec).status().code(), absl::StatusCode::kNotFound);
}

TEST(ShmRingRegionTest, CreatorDestructorUnlinks) {
  std::string name;
  {
    std::unique_ptr<RingRegion> region = MustCreate();
    name = region->name();
    EXPECT_TRUE(ShmExists(name));
  }
  EXPECT_FALSE(ShmExists(name));
}

TEST(ShmRingRegionTest, BadTagOrCapacity) {
  EXPECT_EQ(RingRegion::Create("a/b", SmallCapacity()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RingRegion::Create("", SmallCapacity()).status().code(),
            absl::StatusCode::kInvalidArgument);
  RingCapacity c = SmallCapacity();
  c.depth = 1;
  EXPECT_EQ(RingRegion::Create("unit", c).status().code(), absl::StatusCode::kInvalidArgument);
}

class ShmRingOpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    region_ = MustCreate();
    ASSERT_NE(region_, nullptr);
    spec_ = region_->spec();
  }
  absl::Status OpenStatus(const RingSpec& spec) { return RingRegion::Open(spec).status(); }

  std::unique_ptr<RingRegion> region_;
  RingSpec spec_;
};

TEST_F(ShmRingOpenTest, CorruptedMagic) {
  Header(*region_)->magic ^= 1;
  absl::Status s = OpenStatus(spec_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("not a Tandem ring"));
}

TEST_F(ShmRingOpenTest, CorruptedVersion) {
  Header(*region_)->layout_version = 99;
  absl::Status s = OpenStatus(spec_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("layout version 99"));
}

TEST_F(ShmRingOpenTest, CorruptedSizes) {
  Header(*region_)->max_tokens = 1000;
  EXPECT_THAT(OpenStatus(spec_).message(), HasSubstr("max_tokens is 1000, expected 8"));
  Header(*region_)->max_tokens = 8;
  Header(*region_)->slot_stride += 64;
  EXPECT_THAT(OpenStatus(spec_).message(), HasSubstr("slot_stride"));
  Header(*region_)->slot_stride -= 64;
  Header(*region_)->depth = 3;
  EXPECT_THAT(OpenStatus(spec_).message(), HasSubstr("depth is 3"));
  Header(*region_)->depth = 2;
  Header(*region_)->region_size = 1;
  EXPECT_THAT(OpenStatus(spec_).message(), HasSubstr("region_size"));
  Header(*region_)->region_size = spec_.size;
  Header(*region_)->result_offset = 0;
  EXPECT_THAT(OpenStatus(spec_).message(), HasSubstr("result_offset"));
  Header(*region_)->result_offset = region_->layout().result;
  EXPECT_TRUE(OpenStatus(spec_).ok());
}

TEST_F(ShmRingOpenTest, SpecMismatch) {
  RingSpec spec = spec_;
  spec.magic = 1;
  EXPECT_EQ(OpenStatus(spec).code(), absl::StatusCode::kFailedPrecondition);
  spec = spec_;
  spec.layout_version = 99;
  EXPECT_THAT(OpenStatus(spec).message(), HasSubstr("announced layout version 99"));
  spec = spec_;
  spec.size += 4096;
  EXPECT_THAT(OpenStatus(spec).message(), HasSubstr("announced size"));
  spec = spec_;
  spec.capacity.hidden_size = 32;  // consistent size, but not what the region holds
  spec.size = RingRegionBytes(spec.capacity, *ComputeSlotLayout(spec.capacity));
  EXPECT_EQ(OpenStatus(spec).code(), absl::StatusCode::kInvalidArgument);
  spec = spec_;
  spec.capacity.depth = 0;
  EXPECT_THAT(OpenStatus(spec).message(), HasSubstr("depth"));
  spec = spec_;
  spec.name = "no-slash";
  EXPECT_EQ(OpenStatus(spec).code(), absl::StatusCode::kInvalidArgument);
  spec.name = "/tandem-does-not-exist-0123456789abcdef";
  EXPECT_EQ(OpenStatus(spec).code(), absl::StatusCode::kNotFound);
}

TEST_F(ShmRingOpenTest, TruncatedRegion) {
  const int fd = shm_open(spec_.name.c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(spec_.size / 2)), 0);
  close(fd);
  absl::Status s = OpenStatus(spec_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("truncated"));
}

// ---------------------------------------------------------------------------------------------
// Protocol

class ShmRingProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    region_ = MustCreate();
    ASSERT_NE(region_, nullptr);
    absl::StatusOr<std::unique_ptr<RingRegion>> opened = RingRegion::Open(region_->spec());
    ASSERT_TRUE(opened.ok()) << opened.status();
    worker_region_ = std::move(*opened);
    producer_ = std::make_unique<RingProducer>(region_.get());
    consumer_ =
        std::make_unique<RingConsumer>(worker_region_.get(), RingLayerRange{0, 4}, options_);
  }
  const RingCapacity& cap() const { return region_->capacity(); }
  std::vector<float> Out(int64_t tokens) const {
    return std::vector<float>(tokens * cap().hidden_size, -1.0f);
  }

  RingWaitOptions options_;
  std::unique_ptr<RingRegion> region_;
  std::unique_ptr<RingRegion> worker_region_;  // the worker's own mapping of the same region
  std::unique_ptr<RingProducer> producer_;
  std::unique_ptr<RingConsumer> consumer_;
};

TEST_F(ShmRingProtocolTest, RoundTripsAcrossWraps) {
  for (int i = 0; i < 7; ++i) {
    const int64_t tokens = i % 3 == 0 ? 0 : (i % 2 == 0 ? cap().max_tokens : 3);
    TestRequest req(cap(), tokens, 2, i, /*layer=*/i % 4, i % 2 ? kRingFlagDeferred : 0);
    absl::StatusOr<uint64_t> seq = producer_->Submit(req.request);
    ASSERT_TRUE(seq.ok()) << seq.status();
    EXPECT_EQ(*seq, static_cast<uint64_t>(i + 1));
    absl::StatusOr<RingRequestView> view = consumer_->WaitRequest(kLong);
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(view->seq, *seq);
    EXPECT_EQ(view->layer, i % 4);
    EXPECT_EQ(view->num_tokens, tokens);
    EXPECT_EQ(view->top_k, 2);
    EXPECT_EQ(view->flags, i % 2 ? kRingFlagDeferred : 0u);
    for (int64_t j = 0; j < tokens * 2; ++j) {
      EXPECT_EQ(view->expert_ids[j], req.ids[j]);
      EXPECT_EQ(view->weights[j], req.weights[j]);
    }
    Answer(*consumer_, *view, cap().hidden_size);
    std::vector<float> out = Out(tokens);
    ASSERT_TRUE(producer_->WaitResult(*seq, out.data(), kLong).ok());
    ExpectAnswered(req, out);
  }
  EXPECT_EQ(producer_->outstanding(), 0);
  EXPECT_EQ(producer_->counters().wakes, 0u);  // nobody ever slept
}

TEST_F(ShmRingProtocolTest, DepthTwoPipelining) {
  TestRequest deferred(cap(), 3, 2, 1, 1, kRingFlagDeferred);
  TestRequest immediate(cap(), 5, 4, 2, 1);
  absl::StatusOr<uint64_t> a = producer_->Submit(deferred.request);
  absl::StatusOr<uint64_t> b = producer_->Submit(immediate.request);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(producer_->outstanding(), 2);
  TestRequest third(cap(), 1, 1, 3, 2);
  EXPECT_EQ(producer_->Submit(third.request).status().code(),
            absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<RingRequestView> va = consumer_->WaitRequest(kLong);
  absl::StatusOr<RingRequestView> vb = consumer_->WaitRequest(kLong);
  ASSERT_TRUE(va.ok() && vb.ok());
  EXPECT_EQ(va->seq, *a);
  EXPECT_EQ(vb->seq, *b);
  EXPECT_TRUE(va->flags & kRingFlagDeferred);
  // Both handed out: a third wait is refused rather than reading a busy slot.
  EXPECT_EQ(consumer_->WaitRequest(absl::ZeroDuration()).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Answered and collected out of order.
  Answer(*consumer_, *vb, cap().hidden_size);
  std::vector<float> out_b = Out(5);
  ASSERT_TRUE(producer_->WaitResult(*b, out_b.data(), kLong).ok());
  ExpectAnswered(immediate, out_b);
  // Slot of `a` is still busy.
  EXPECT_EQ(producer_->Submit(third.request).status().code(),
            absl::StatusCode::kFailedPrecondition);
  Answer(*consumer_, *va, cap().hidden_size);
  std::vector<float> out_a = Out(3);
  ASSERT_TRUE(producer_->WaitResult(*a, out_a.data(), kLong).ok());
  ExpectAnswered(deferred, out_a);

  absl::StatusOr<uint64_t> c = producer_->Submit(third.request);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, 3u);
  absl::StatusOr<RingRequestView> vc = consumer_->WaitRequest(kLong);
  ASSERT_TRUE(vc.ok()) << vc.status();
  Answer(*consumer_, *vc, cap().hidden_size);
  std::vector<float> out_c = Out(1);
  ASSERT_TRUE(producer_->WaitResult(*c, out_c.data(), kLong).ok());
  ExpectAnswered(third, out_c);
}

TEST_F(ShmRingProtocolTest, ProducerRejectsBadRequests) {
  TestRequest req(cap(), 2, 2, 0);
  RingRequest r = req.request;
  r.num_tokens = cap().max_tokens + 1;
  EXPECT_THAT(producer_->Submit(r).status().message(), HasSubstr("num_tokens 9"));
  r = req.request;
  r.top_k = cap().max_top_k + 1;
  EXPECT_THAT(producer_->Submit(r).status().message(), HasSubstr("top_k 5"));
  r = req.request;
  r.num_tokens = -1;
  EXPECT_EQ(producer_->Submit(r).status().code(), absl::StatusCode::kInvalidArgument);
  r = req.request;
  r.flags = 0x80;
  EXPECT_THAT(producer_->Submit(r).status().message(), HasSubstr("unknown bits"));
  r = req.request;
  r.hidden = nullptr;
  EXPECT_THAT(producer_->Submit(r).status().message(), HasSubstr("null"));
  EXPECT_EQ(producer_->last_submitted(), 0u);
  std::vector<float> out = Out(2);
  EXPECT_EQ(producer_->WaitResult(1, out.data(), kLong).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(consumer_->Complete(1, absl::OkStatus()).code(), absl::StatusCode::kFailedPrecondition);
}

// A bad header with the right sequence number: the consumer answers it with the error, so the
// producer's wait returns it, and the ring keeps working.
struct CorruptCase {
  const char* name;
  void (*corrupt)(RingRequestLine*);
  const char* message;
};

class ShmRingCorruptHeaderTest : public ShmRingProtocolTest,
                                 public ::testing::WithParamInterface<CorruptCase> {};

TEST_P(ShmRingCorruptHeaderTest, AnsweredWithErrorAndRingContinues) {
  TestRequest req(cap(), 2, 2, 0, 1);
  ASSERT_TRUE(producer_->Submit(req.request).ok());
  GetParam().corrupt(RequestLineOf(*region_, 1));
  absl::StatusOr<RingRequestView> view = consumer_->WaitRequest(kLong);
  ASSERT_FALSE(view.ok());
  EXPECT_EQ(view.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(view.status().message(), HasSubstr(GetParam().message));
  std::vector<float> out = Out(2);
  absl::Status s = producer_->WaitResult(1, out.data(), kLong);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(GetParam().message));

  ASSERT_TRUE(producer_->Submit(req.request).ok());
  view = consumer_->WaitRequest(kLong);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->seq, 2u);
  Answer(*consumer_, *view, cap().hidden_size);
  ASSERT_TRUE(producer_->WaitResult(2, out.data(), kLong).ok());
  ExpectAnswered(req, out);
}

INSTANTIATE_TEST_SUITE_P(
    Fields, ShmRingCorruptHeaderTest,
    ::testing::Values(
        CorruptCase{"tokens", [](RingRequestLine* l) { l->num_tokens = 9; },
                    "num_tokens 9 exceeds max_tokens 8"},
        CorruptCase{"huge_tokens", [](RingRequestLine* l) { l->num_tokens = 0xFFFFFFFFu; },
                    "num_tokens 4294967295"},
        CorruptCase{"top_k", [](RingRequestLine* l) { l->top_k = 5; },
                    "top_k 5 exceeds max_top_k 4"},
        CorruptCase{"layer_high", [](RingRequestLine* l) { l->layer = 4; },
                    "layer 4 is outside [0, 4)"},
        CorruptCase{"layer_negative", [](RingRequestLine* l) { l->layer = -1; }, "layer -1"},
        CorruptCase{"flags", [](RingRequestLine* l) { l->flags = 0x10; }, "unknown bits"}),
    [](const ::testing::TestParamInfo<CorruptCase>& info) { return info.param.name; });

TEST_F(ShmRingProtocolTest, WrongRequestSequenceNumberIsDataLoss) {
  // The producer publishes a number the consumer does not expect (3 in slot 1, expecting 1).
  RequestLineOf(*region_, 1)->seq = 3;
  absl::StatusOr<RingRequestView> view = consumer_->WaitRequest(kLong);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(view.status().message(), HasSubstr("request sequence number 3, expected 1"));
  // The ring stays refused; no advance.
  EXPECT_EQ(consumer_->WaitRequest(kLong).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(consumer_->next_expected(), 1u);
}

TEST_F(ShmRingProtocolTest, WrongResponseSequenceNumberIsDataLoss) {
  TestRequest req(cap(), 1, 1, 0);
  ASSERT_TRUE(producer_->Submit(req.request).ok());
  ResponseLineOf(*region_, 1)->seq = 77;
  std::vector<float> out = Out(1);
  absl::Status s = producer_->WaitResult(1, out.data(), kLong);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("response sequence number 77, expected 1"));
}

TEST_F(ShmRingProtocolTest, InvalidReplyStatusIsDataLoss) {
  TestRequest req(cap(), 1, 1, 0);
  ASSERT_TRUE(producer_->Submit(req.request).ok());
  absl::StatusOr<RingRequestView> view = consumer_->WaitRequest(kLong);
  ASSERT_TRUE(view.ok());
  ASSERT_TRUE(consumer_->Complete(1, absl::InternalError("x")).ok());
  ResponseLineOf(*region_, 1)->status_code = 1234;
  std::vector<float> out = Out(1);
  EXPECT_THAT(producer_->WaitResult(1, out.data(), kLong).message(),
              HasSubstr("invalid status code 1234"));
}

TEST_F(ShmRingProtocolTest, WorkerErrorReachesProducer) {
  TestRequest req(cap(), 1, 1, 0);
  ASSERT_TRUE(producer_->Submit(req.request).ok());
  absl::StatusOr<RingRequestView> view = consumer_->WaitRequest(kLong);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(consumer_->Complete(2, absl::OkStatus()).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(
      consumer_->Complete(1, absl::ResourceExhaustedError("expert 7 " + std::string(2000, 'x')))
          .ok());
  std::vector<float> out = Out(1);
  absl::Status s = producer_->WaitResult(1, out.data(), kLong);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("expert 7 xxx"));
  EXPECT_LT(s.message().size(), kRingErrorTextBytes + 100);  // truncated
  // Collected: the slot is free again.
  EXPECT_EQ(producer_->outstanding(), 0);
}

TEST_F(ShmRingProtocolTest, TimeoutsAreDeadlineExceeded) {
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<RingRequestView> view = consumer_->WaitRequest(absl::Milliseconds(20));
  EXPECT_EQ(view.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
  EXPECT_EQ(consumer_->WaitRequest(absl::ZeroDuration()).status().code(),
            absl::StatusCode::kDeadlineExceeded);

  TestRequest req(cap(), 2, 2, 5);
  absl::StatusOr<uint64_t> seq = producer_->Submit(req.request);
  ASSERT_TRUE(seq.ok());
  std::vector<float> out = Out(2);
  absl::Status s = producer_->WaitResult(*seq, out.data(), absl::Milliseconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("waiting for the response to request 1"));
  // Still outstanding: a later wait gets the answer.
  EXPECT_EQ(producer_->outstanding(), 1);
  view = consumer_->WaitRequest(kLong);
  ASSERT_TRUE(view.ok()) << view.status();
  Answer(*consumer_, *view, cap().hidden_size);
  ASSERT_TRUE(producer_->WaitResult(*seq, out.data(), kLong).ok());
  ExpectAnswered(req, out);
}

TEST_F(ShmRingProtocolTest, LivenessErrorIsReturned) {
  TestRequest req(cap(), 1, 1, 0);
  absl::StatusOr<uint64_t> seq = producer_->Submit(req.request);
  ASSERT_TRUE(seq.ok());
  int calls = 0;
  auto still_alive = [&]() -> absl::Status {
    if (++calls < 3) return absl::OkStatus();
    return absl::UnavailableError("worker 0 (pid 4242) was killed by signal 9");
  };
  std::vector<float> out = Out(1);
  auto start = std::chrono::steady_clock::now();
  absl::Status s = producer_->WaitResult(*seq, out.data(), absl::Seconds(30), still_alive);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("killed by signal 9"));
  EXPECT_THAT(s.message(), HasSubstr(region_->name()));
  EXPECT_EQ(calls, 3);
  EXPECT_LT(elapsed, std::chrono::seconds(1));  // three checks ~2 ms apart
  EXPECT_GE(producer_->counters().sleeps, 2u);

  // The consumer side takes a liveness check too.
  absl::StatusOr<RingRequestView> view = consumer_->WaitRequest(kLong);  // request 1 is there
  ASSERT_TRUE(view.ok());
  absl::StatusOr<RingRequestView> next =
      consumer_->WaitRequest(kLong, [] { return absl::CancelledError("coordinator went away"); });
  EXPECT_EQ(next.status().code(), absl::StatusCode::kCancelled);
}

// A peer that writes garbage: random bytes over the request and response lines, sometimes with
// the expected sequence number. Every call returns (zero timeout), and whatever is handed out
// lies inside the slot it belongs to.
TEST(ShmRingFuzzTest, GarbageFromThePeerIsAnErrorOrInBounds) {
  std::unique_ptr<RingRegion> region = MustCreate();
  ASSERT_NE(region, nullptr);
  const RingCapacity& cap = region->capacity();
  const RingSlotLayout& layout = region->layout();
  std::mt19937_64 rng(7);
  auto scribble = [&](void* line) {
    uint64_t words[8];
    for (uint64_t& w : words) w = rng();
    std::memcpy(line, words, sizeof(words));
  };
  int handed_out = 0, rejected = 0, answered = 0;
  for (int round = 0; round < 2000; ++round) {
    // Consumer side: a fresh consumer expects request 1 in slot 1.
    RingConsumer consumer(region.get(), RingLayerRange{0, 8});
    RingRequestLine* req = RequestLineOf(*region, 1);
    scribble(req);
    if (rng() % 4 != 0) req->seq = 1;
    if (rng() % 4 != 0) req->num_tokens %= 2 * cap.max_tokens;
    if (rng() % 4 != 0) req->top_k %= 2 * cap.max_top_k;
    if (rng() % 4 != 0) req->layer = static_cast<int32_t>(rng() % 10);
    if (rng() % 4 != 0) req->flags &= 1;
    absl::StatusOr<RingRequestView> view = consumer.WaitRequest(absl::ZeroDuration());
    if (view.ok()) {
      ++handed_out;
      const uint8_t* slot = region->slot(1);
      const uint8_t* end = slot + layout.stride;
      ASSERT_LE(view->num_tokens, cap.max_tokens);
      ASSERT_LE(view->top_k, cap.max_top_k);
      const auto* hidden_end =
          reinterpret_cast<const uint8_t*>(view->hidden + view->num_tokens * cap.hidden_size);
      const auto* result_end =
          reinterpret_cast<const uint8_t*>(view->result + view->num_tokens * cap.hidden_size);
      const auto* ids_end =
          reinterpret_cast<const uint8_t*>(view->expert_ids + view->num_tokens * view->top_k);
      ASSERT_GE(reinterpret_cast<const uint8_t*>(view->hidden), slot);
      ASSERT_LE(hidden_end, slot + layout.expert_ids);
      ASSERT_LE(ids_end, slot + layout.weights);
      ASSERT_LE(result_end, end);
      for (int64_t i = 0; i < view->num_tokens * cap.hidden_size; ++i) view->result[i] = 1.0f;
      ASSERT_TRUE(consumer.Complete(view->seq, absl::OkStatus()).ok());
    } else {
      ++rejected;
      ASSERT_NE(view.status().code(), absl::StatusCode::kOk);
    }

    // Producer side: request 1 submitted, then garbage in its response line.
    RingProducer producer(region.get());
    std::memset(region->slot(1), 0, 2 * kRingCacheLine);
    TestRequest r(cap, static_cast<int64_t>(rng() % (cap.max_tokens + 1)), 1, round);
    ASSERT_TRUE(producer.Submit(r.request).ok());
    RingResponseLine* resp = ResponseLineOf(*region, 1);
    scribble(resp);
    if (rng() % 2) resp->seq = 1;
    if (rng() % 2) resp->status_code = static_cast<int32_t>(rng() % 20);
    if (rng() % 2) resp->error_len %= 2 * kRingErrorTextBytes;
    std::vector<float> out(r.hidden.size());
    absl::Status s = producer.WaitResult(1, out.data(), absl::ZeroDuration());
    if (s.ok()) ++answered;
    std::memset(region->slot(1), 0, 2 * kRingCacheLine);
  }
  // Both outcomes were exercised.
  EXPECT_GT(handed_out, 100);
  EXPECT_GT(rejected, 100);
  EXPECT_GT(answered, 10);
}

// The sleeping path: a consumer that spins not at all is woken by the futex.
TEST(ShmRingFutexTest, SleepingWaitersAreWoken) {
  std::unique_ptr<RingRegion> region = MustCreate();
  ASSERT_NE(region, nullptr);
  RingWaitOptions options;
  options.spin = absl::ZeroDuration();
  options.liveness_interval = absl::Seconds(5);  // only the wake-up can end a sleep early
  RingProducer producer(region.get(), options);
  RingConsumer consumer(region.get(), RingLayerRange{0, 1}, options);
  constexpr int kRounds = 20;
  std::thread worker([&] {
    for (int i = 0; i < kRounds; ++i) {
      absl::StatusOr<RingRequestView> view = consumer.WaitRequest(kLong);
      ASSERT_TRUE(view.ok()) << view.status();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // let the producer sleep
      for (int64_t j = 0; j < view->num_tokens * 16; ++j) view->result[j] = view->hidden[j] + 1;
      ASSERT_TRUE(consumer.Complete(view->seq, absl::OkStatus()).ok());
    }
  });
  TestRequest req(region->capacity(), 2, 1, 9);
  std::vector<float> out(2 * 16);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // let the consumer sleep
    absl::StatusOr<uint64_t> seq = producer.Submit(req.request);
    ASSERT_TRUE(seq.ok());
    ASSERT_TRUE(producer.WaitResult(*seq, out.data(), kLong).ok());
    for (size_t j = 0; j < out.size(); ++j) ASSERT_EQ(out[j], req.hidden[j] + 1);
  }
  worker.join();
  // 20 rounds with ~2 ms of sleeps each: far from the 5 s sleeps a lost wake-up would cost.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_GT(consumer.counters().sleeps + producer.counters().sleeps, 0u);
  EXPECT_GT(producer.counters().wakes + consumer.counters().wakes, 0u);
}

}  // namespace
}  // namespace tandem
