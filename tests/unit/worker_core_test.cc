// Tests for numa_worker/worker_core.h without sockets or a second process: Hello, LoadShard
// (fingerprints, dtypes, shard specs, reloads), AttachRing (validation, replacement), the ring
// loop (results equal ExpertShard's, bad requests answered and survived, a corrupted ring given
// up), and Stats. The ring's producer side runs on the test thread.
#include "numa_worker/worker_core.h"

#include <unistd.h>

#include <omp.h>

#include <random>
#include <thread>

#include "common/checkpoint.h"
#include "common/checkpoint_fingerprint.h"
#include "common/shm_ring.h"
#include "common/topology.h"
#include "common/worker_protocol.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "numa_worker/cpu_binding.h"
#include "tests/fixture_paths.h"
#include "tests/worker_test_support.h"

namespace tandem {
namespace {

// A thread pinned to one CPU (as gRPC's threads were, inheriting the main thread's mask) gets an
// OpenMP team over all the binding's cores for the scope, then its own mask back.
TEST(ScopedOpenMpTeamTest, GivesAPinnedThreadTheWholeBindingThenRestoresItsMask) {
  auto all = AllowedCpus();
  ASSERT_TRUE(all.ok()) << all.status();
  CpuBinding binding;
  binding.cpus = *all;
  binding.threads = static_cast<int>(all->size());
  std::thread([&] {
    ASSERT_TRUE(PinThreadToCpu(all->back()).ok());
    {
      ScopedOpenMpTeam team(binding);
      ASSERT_TRUE(team.status().ok()) << team.status();
      std::vector<std::vector<int>> seen(binding.threads);
      int team_size = 0;
#pragma omp parallel
      {
        if (omp_get_thread_num() == 0) team_size = omp_get_num_threads();
        seen[omp_get_thread_num()] = *AllowedCpus();
      }
      EXPECT_EQ(team_size, binding.threads);
      for (int i = 0; i < team_size; ++i)
        EXPECT_THAT(seen[i], ::testing::ElementsAre(binding.cpus[i % binding.cpus.size()])) << i;
    }
    EXPECT_THAT(*AllowedCpus(), ::testing::ElementsAre(all->back()));
  }).join();
}

using testing::Batch;
using testing::FixtureModel;
using ::testing::HasSubstr;
using testing::LoadRequest;
using testing::MaxAbsDiff;
using testing::Plan;
using testing::RandomBatch;
using testing::Reference;

constexpr absl::Duration kWait = absl::Seconds(10);

RingCapacity Capacity(const FixtureModel& m) {
  RingCapacity c;
  c.depth = 2;
  c.max_tokens = 8;
  c.hidden_size = static_cast<uint32_t>(m.config.hidden_size);
  c.max_top_k = static_cast<uint32_t>(m.config.moe.top_k);
  return c;
}

v1::AttachRingRequest AttachRequest(const RingSpec& spec) {
  v1::AttachRingRequest r;
  r.set_name(spec.name);
  r.set_size_bytes(spec.size);
  r.set_layout_version(spec.layout_version);
  r.set_magic(spec.magic);
  r.mutable_capacity()->set_depth(spec.capacity.depth);
  r.mutable_capacity()->set_max_tokens(spec.capacity.max_tokens);
  r.mutable_capacity()->set_hidden_size(spec.capacity.hidden_size);
  r.mutable_capacity()->set_max_top_k(spec.capacity.max_top_k);
  r.mutable_capacity()->set_dtype(static_cast<uint32_t>(spec.capacity.dtype));
  return r;
}

WorkerIdentity TestIdentity() {
  WorkerIdentity id;
  id.worker_id = "test";
  id.binding.cpus = {(*AllowedCpus())[0]};
  id.binding.threads = 1;
  id.cpu_kernel = *ResolveCpuKernel(CpuKernel::kAuto);
  return id;
}

class WorkerCoreTest : public ::testing::Test {
 protected:
  void SetUp() override { qwen_ = testing::LoadFixtureModel("qwen3_moe"); }
  FixtureModel qwen_;
  WorkerCore core_{TestIdentity()};
};

TEST_F(WorkerCoreTest, HelloChecksTheProtocolVersion) {
  v1::HelloRequest hello;
  hello.set_protocol_version(kWorkerProtocolVersion);
  absl::StatusOr<v1::HelloResponse> r = core_.Hello(hello);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->protocol_version(), kWorkerProtocolVersion);
  EXPECT_EQ(r->worker_id(), "test");
  EXPECT_EQ(r->pid(), getpid());
  EXPECT_EQ(r->topology().threads(), 1);
  EXPECT_EQ(r->topology().cpus_size(), 1);
  EXPECT_THAT(r->isa(), ::testing::AnyOf("avx512", "reference"));

  hello.set_protocol_version(kWorkerProtocolVersion + 1);
  r = core_.Hello(hello);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(),
            absl::StrCat("protocol version mismatch: worker speaks ", kWorkerProtocolVersion,
                         ", coordinator sent ", kWorkerProtocolVersion + 1));
}

TEST_F(WorkerCoreTest, LoadShardRefusesBadRequests) {
  const ShardPlan plan = Plan(ShardPlan::Mode::kTensorParallel, 0, 2);
  v1::LoadShardRequest r = LoadRequest(qwen_, plan);
  r.set_expert_dtype("fp8");
  EXPECT_EQ(core_.LoadShard(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.set_expert_dtype("int4");
  r.set_int4_group_size(64);
  EXPECT_EQ(core_.LoadShard(r).status().code(), absl::StatusCode::kInvalidArgument);

  r = LoadRequest(qwen_, plan);
  r.mutable_shard()->set_index(2);
  EXPECT_EQ(core_.LoadShard(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.mutable_shard()->set_count(0);
  r.mutable_shard()->set_index(0);
  EXPECT_EQ(core_.LoadShard(r).status().code(), absl::StatusCode::kInvalidArgument);

  r = LoadRequest(qwen_, plan);
  r.set_checkpoint_fingerprint("0123456789abcdef");
  absl::Status s = core_.LoadShard(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr(qwen_.fingerprint));
  EXPECT_THAT(std::string(s.message()), HasSubstr("0123456789abcdef"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(qwen_.dir));

  r = LoadRequest(qwen_, plan);
  r.set_checkpoint_path(qwen_.dir + "/does-not-exist");
  EXPECT_FALSE(core_.LoadShard(r).ok());

  // Nothing was loaded by any of these.
  EXPECT_EQ(core_.AttachRing(v1::AttachRingRequest()).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(WorkerCoreTest, LoadShardOnceThenOnlyTheSameAgain) {
  const ShardPlan plan = Plan(ShardPlan::Mode::kTensorParallel, 0, 2);
  absl::StatusOr<v1::LoadShardResponse> r = core_.LoadShard(LoadRequest(qwen_, plan));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->checkpoint_fingerprint(), qwen_.fingerprint);
  EXPECT_EQ(r->moe_layers(), static_cast<uint32_t>(qwen_.config.NumMoeLayers()));
  const auto reference = ExpertShard::Load(qwen_.config, *qwen_.checkpoint, plan);
  EXPECT_EQ(r->expert_bytes(), (*reference)->weight_bytes());

  v1::LoadShardRequest again = LoadRequest(qwen_, plan);
  again.clear_checkpoint_fingerprint();  // empty: not checked
  absl::StatusOr<v1::LoadShardResponse> same = core_.LoadShard(again);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->expert_bytes(), r->expert_bytes());

  absl::Status other = core_.LoadShard(LoadRequest(qwen_, Plan(plan.mode, 1, 2))).status();
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  v1::LoadShardRequest int8 = LoadRequest(qwen_, plan);  // same shard, another format
  int8.set_expert_dtype("int8");
  other = core_.LoadShard(int8).status();
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.message()), HasSubstr("(bf16)"));
  EXPECT_THAT(std::string(other.message()), HasSubstr("int8"));
  const FixtureModel deepseek = testing::LoadFixtureModel("deepseek_v3");
  other = core_.LoadShard(LoadRequest(deepseek, plan)).status();
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.message()), HasSubstr("restart the worker"));
}

TEST_F(WorkerCoreTest, AttachRingChecksTheRegionAgainstTheModel) {
  ASSERT_TRUE(core_.LoadShard(LoadRequest(qwen_, ShardPlan{})).ok());
  RingCapacity wrong_hidden = Capacity(qwen_);
  wrong_hidden.hidden_size += 1;
  auto region = *RingRegion::Create("coretest", wrong_hidden);
  EXPECT_EQ(core_.AttachRing(AttachRequest(region->spec())).code(),
            absl::StatusCode::kInvalidArgument);
  RingCapacity small_k = Capacity(qwen_);
  small_k.max_top_k = static_cast<uint32_t>(qwen_.config.moe.top_k - 1);
  region = *RingRegion::Create("coretest", small_k);
  EXPECT_EQ(core_.AttachRing(AttachRequest(region->spec())).code(),
            absl::StatusCode::kInvalidArgument);

  region = *RingRegion::Create("coretest", Capacity(qwen_));
  v1::AttachRingRequest r = AttachRequest(region->spec());
  r.set_magic(r.magic() + 1);
  EXPECT_EQ(core_.AttachRing(r).code(), absl::StatusCode::kFailedPrecondition);
  r = AttachRequest(region->spec());
  r.set_size_bytes(r.size_bytes() + 4096);
  EXPECT_EQ(core_.AttachRing(r).code(), absl::StatusCode::kInvalidArgument);
  r = AttachRequest(region->spec());
  r.set_name(r.name() + "x");
  EXPECT_EQ(core_.AttachRing(r).code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(core_.serving_ring());
  EXPECT_TRUE(core_.AttachRing(AttachRequest(region->spec())).ok());
  EXPECT_TRUE(core_.serving_ring());
}

TEST_F(WorkerCoreTest, ServesTheRingExactlyAndSurvivesBadRequests) {
  const ShardPlan plan = Plan(ShardPlan::Mode::kTensorParallel, 1, 3);  // uneven: 32 = 11+11+10
  ASSERT_TRUE(core_.LoadShard(LoadRequest(qwen_, plan)).ok());
  auto region = *RingRegion::Create("coretest", Capacity(qwen_));
  ASSERT_TRUE(core_.AttachRing(AttachRequest(region->spec())).ok());
  RingProducer producer(region.get());
  const int64_t h = qwen_.config.hidden_size;

  const Batch batch = RandomBatch(qwen_, 5, 7);
  std::vector<float> out(batch.tokens * h, -1.0f);
  uint64_t seq = *producer.Submit(batch.Request());
  ASSERT_TRUE(producer.WaitResult(seq, out.data(), kWait).ok());
  EXPECT_LE(MaxAbsDiff(out, Reference(qwen_, plan, batch)), 1e-6f);

  Batch bad = batch;
  bad.ids[3] = static_cast<int32_t>(qwen_.config.moe.num_experts);
  seq = *producer.Submit(bad.Request());
  absl::Status s = producer.WaitResult(seq, out.data(), kWait);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("expert id 16 out of range"));

  Batch bad_layer = batch;
  bad_layer.layer = 0;  // a dense layer
  seq = *producer.Submit(bad_layer.Request());
  EXPECT_EQ(producer.WaitResult(seq, out.data(), kWait).code(), absl::StatusCode::kInvalidArgument);
  bad_layer.layer = 1000;  // outside the model: rejected by the ring's header validation
  seq = *producer.Submit(bad_layer.Request());
  EXPECT_EQ(producer.WaitResult(seq, out.data(), kWait).code(), absl::StatusCode::kInvalidArgument);

  // Still serving; two requests in flight (depth 2).
  const Batch second = RandomBatch(qwen_, 8, 8);
  std::vector<float> out2(second.tokens * h);
  const uint64_t a = *producer.Submit(batch.Request());
  const uint64_t b = *producer.Submit(second.Request());
  ASSERT_TRUE(producer.WaitResult(b, out2.data(), kWait).ok());
  ASSERT_TRUE(producer.WaitResult(a, out.data(), kWait).ok());
  EXPECT_LE(MaxAbsDiff(out, Reference(qwen_, plan, batch)), 1e-6f);
  EXPECT_LE(MaxAbsDiff(out2, Reference(qwen_, plan, second)), 1e-6f);

  // An empty request is answered too.
  Batch empty;
  empty.layer = qwen_.moe_layer;
  seq = *producer.Submit(empty.Request());
  EXPECT_TRUE(producer.WaitResult(seq, nullptr, kWait).ok());

  const v1::StatsResponse stats = core_.Stats();
  EXPECT_EQ(stats.requests(), 4u);
  EXPECT_EQ(stats.tokens(), 5u + 5u + 8u);
  EXPECT_EQ(stats.errors(), 3u);
  EXPECT_GT(stats.busy_ns(), 0u);
  EXPECT_TRUE(core_.serving_ring());
}

TEST_F(WorkerCoreTest, ExpertBytesReadCountsEachUsedExpertOnce) {
  const ShardPlan plan = Plan(ShardPlan::Mode::kExpertParallel, 0, 2);  // experts 0..7
  absl::StatusOr<v1::LoadShardResponse> loaded = core_.LoadShard(LoadRequest(qwen_, plan));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const uint64_t per_expert = loaded->expert_bytes() / (8 * qwen_.config.NumMoeLayers());
  auto region = *RingRegion::Create("coretest", Capacity(qwen_));
  ASSERT_TRUE(core_.AttachRing(AttachRequest(region->spec())).ok());
  RingProducer producer(region.get());
  Batch b = RandomBatch(qwen_, 2, 3);
  b.ids = {0, 1, 2, 9, 1, 2, 10, 11};  // held: 0, 1, 2 (once each); 9..11 belong to shard 1
  std::vector<float> out(2 * qwen_.config.hidden_size);
  const uint64_t seq = *producer.Submit(b.Request());
  ASSERT_TRUE(producer.WaitResult(seq, out.data(), kWait).ok());
  EXPECT_LE(MaxAbsDiff(out, Reference(qwen_, plan, b)), 1e-6f);
  EXPECT_EQ(core_.Stats().expert_bytes_read(), 3 * per_expert);
}

TEST_F(WorkerCoreTest, CorruptedRingIsGivenUpAndAFreshOneReplacesIt) {
  ASSERT_TRUE(core_.LoadShard(LoadRequest(qwen_, ShardPlan{})).ok());
  auto broken = *RingRegion::Create("coretest", Capacity(qwen_));
  ASSERT_TRUE(core_.AttachRing(AttachRequest(broken->spec())).ok());
  // A producer that skips ahead: slot 1 shows request 7 where request 1 is due.
  auto* line = reinterpret_cast<RingRequestLine*>(broken->slot(1) + broken->layout().request_line);
  RingWaitCounters counters;
  PublishSeq(&line->seq, &line->futex, 7, &counters);
  for (int i = 0; i < 500 && core_.serving_ring(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_FALSE(core_.serving_ring());
  EXPECT_EQ(core_.Stats().errors(), 1u);

  auto fresh = *RingRegion::Create("coretest", Capacity(qwen_));
  ASSERT_TRUE(core_.AttachRing(AttachRequest(fresh->spec())).ok());
  RingProducer producer(fresh.get());
  const Batch b = RandomBatch(qwen_, 3, 11);
  std::vector<float> out(3 * qwen_.config.hidden_size);
  const uint64_t seq = *producer.Submit(b.Request());
  ASSERT_TRUE(producer.WaitResult(seq, out.data(), kWait).ok());
  EXPECT_LE(MaxAbsDiff(out, Reference(qwen_, ShardPlan{}, b)), 1e-6f);

  // A second attach replaces a healthy ring too; the old one is no longer served.
  auto third = *RingRegion::Create("coretest", Capacity(qwen_));
  ASSERT_TRUE(core_.AttachRing(AttachRequest(third->spec())).ok());
  const uint64_t orphan = *producer.Submit(b.Request());
  EXPECT_EQ(producer.WaitResult(orphan, out.data(), absl::Milliseconds(200)).code(),
            absl::StatusCode::kDeadlineExceeded);

  core_.StopServing();
  EXPECT_FALSE(core_.serving_ring());
  EXPECT_EQ(core_.AttachRing(AttachRequest(third->spec())).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tandem
