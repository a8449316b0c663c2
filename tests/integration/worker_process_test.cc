// The tandem-worker binary as a separate process, driven the way a coordinator drives it but
// without the coordinator's code: the generated WorkerControl stub over a unix socket, and a
// shared-memory ring created here. Checks Hello / LoadShard / AttachRing / Stats / Shutdown,
// results equal to ExpertShard computed in this process, bad requests answered through the ring,
// SIGKILL noticed by the producer's liveness check within 2 s, a restart on the same socket,
// and a clean exit (code 0, socket removed) on Shutdown and on SIGTERM.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "common/checkpoint.h"
#include "common/checkpoint_fingerprint.h"
#include "common/shm_ring.h"
#include "common/topology.h"
#include "common/worker_protocol.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "numa_worker/expert_shard.h"
#include "tandem/v1/worker.grpc.pb.h"
#include "tests/fixture_paths.h"
#include "tests/worker_test_support.h"

namespace tandem {
namespace {

using testing::Batch;
using testing::FixtureModel;
using testing::LoadRequest;
using testing::MaxAbsDiff;
using testing::RandomBatch;
using testing::Reference;

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(10);

// A temporary directory under /tmp (short: unix socket paths are limited to 107 bytes).
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tandem-wpt-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One spawned tandem-worker and a control-plane stub connected to it.
class WorkerProcess {
 public:
  WorkerProcess(const std::string& socket, std::vector<std::string> extra_args) : socket_(socket) {
    std::vector<std::string> args = {TANDEM_WORKER_BIN, "--listen", "unix:" + socket, "--log-level",
                                     "warn"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      execv(argv[0], argv.data());
      _exit(127);
    }
    // Retry fast while the worker starts (gRPC's default first backoff is 1 s).
    grpc::ChannelArguments channel_args;
    channel_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
    channel_args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
    channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
    channel_ = grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(),
                                         channel_args);
    stub_ = v1::WorkerControl::NewStub(channel_);
  }
  ~WorkerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool WaitConnected() {
    return channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  // The exit code (or 128 + signal), -1 if still running after `timeout`.
  int WaitExit(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (absl::Now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
  }

  // What a coordinator passes to RingProducer::WaitResult: Unavailable once the process is gone.
  LivenessCheck Liveness() {
    return [this]() -> absl::Status {
      int status = 0;
      if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
        died_ = WIFSIGNALED(status) ? absl::StrCat("killed by signal ", WTERMSIG(status))
                                    : absl::StrCat("exited with code ", WEXITSTATUS(status));
        dead_pid_ = pid_;
        pid_ = -1;
      }
      if (pid_ <= 0)
        return absl::UnavailableError(absl::StrCat("worker pid ", dead_pid_, " ", died_));
      return absl::OkStatus();
    };
  }

  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  v1::WorkerControl::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

 private:
  std::string socket_;
  pid_t pid_ = -1, dead_pid_ = -1;
  std::string died_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerControl::Stub> stub_;
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return ctx;
}

ShardPlan TensorParallel(int index, int count) {
  ShardPlan p;
  p.index = index;
  p.count = count;
  return p;
}

std::unique_ptr<RingRegion> CreateRing(const FixtureModel& m) {
  RingCapacity c;
  c.depth = 2;
  c.max_tokens = 8;
  c.hidden_size = static_cast<uint32_t>(m.config.hidden_size);
  c.max_top_k = static_cast<uint32_t>(m.config.moe.top_k);
  absl::StatusOr<std::unique_ptr<RingRegion>> region = RingRegion::Create("wpt", c);
  EXPECT_TRUE(region.ok()) << region.status();
  return region.ok() ? *std::move(region) : nullptr;
}

// Loads `plan` of `m`, attaches a fresh ring (unlinked right after, as the coordinator does).
std::unique_ptr<RingRegion> LoadAndAttach(WorkerProcess& w, const FixtureModel& m, const ShardPlan& plan) {
  v1::LoadShardResponse loaded;
  grpc::Status s = w.stub().LoadShard(Context().get(), LoadRequest(m, plan), &loaded);
  EXPECT_TRUE(s.ok()) << s.error_message();
  std::unique_ptr<RingRegion> region = CreateRing(m);
  v1::AttachRingResponse attached;
  s = w.stub().AttachRing(Context().get(), AttachRingRequestFor(region->spec()), &attached);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(region->Unlink().ok());
  return region;
}

class WorkerProcessTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WorkerProcessTest, ControlPlaneRingAndShutdown) {
  const FixtureModel model = testing::LoadFixtureModel(GetParam());
  const int node = (*DiscoverNumaNodes())[0].id;
  TempDir dir;
  WorkerProcess w(dir.path() + "/w.sock", {"--numa-node", std::to_string(node)});
  ASSERT_TRUE(w.WaitConnected());

  grpc::health::v1::HealthCheckResponse health;
  auto health_stub = grpc::health::v1::Health::NewStub(w.channel());
  ASSERT_TRUE(health_stub->Check(Context().get(), {}, &health).ok());
  EXPECT_EQ(health.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  v1::HelloRequest hello;
  hello.set_protocol_version(kWorkerProtocolVersion);
  hello.set_coordinator_id("worker_process_test");
  v1::HelloResponse hi;
  ASSERT_TRUE(w.stub().Hello(Context().get(), hello, &hi).ok());
  EXPECT_EQ(hi.protocol_version(), kWorkerProtocolVersion);
  EXPECT_EQ(hi.pid(), w.pid());
  EXPECT_EQ(hi.worker_id(), std::to_string(node));
  EXPECT_EQ(hi.topology().numa_node(), node);
  EXPECT_GE(hi.topology().cpus_size(), 1);
  EXPECT_EQ(hi.topology().threads(), hi.topology().cpus_size());
  EXPECT_GT(hi.topology().memory_bytes(), 0u);
  EXPECT_THAT(hi.isa(), ::testing::AnyOf("avx512", "amx", "reference"));
  hello.set_protocol_version(kWorkerProtocolVersion + 1);
  grpc::Status s = w.stub().Hello(Context().get(), hello, &hi);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            absl::StrCat("protocol version mismatch: worker speaks ", kWorkerProtocolVersion,
                         ", coordinator sent ", kWorkerProtocolVersion + 1));

  // AttachRing before LoadShard; a foreign fingerprint; an unsupported dtype.
  std::unique_ptr<RingRegion> early = CreateRing(model);
  v1::AttachRingResponse attached;
  s = w.stub().AttachRing(Context().get(), AttachRingRequestFor(early->spec()), &attached);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  const ShardPlan plan = TensorParallel(0, 2);
  v1::LoadShardRequest load = LoadRequest(model, plan);
  load.set_checkpoint_fingerprint("feedfacefeedface");
  v1::LoadShardResponse loaded;
  s = w.stub().LoadShard(Context().get(), load, &loaded);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("feedfacefeedface"));
  EXPECT_THAT(s.error_message(), HasSubstr(model.fingerprint));
  EXPECT_THAT(s.error_message(), HasSubstr(model.dir));
  load = LoadRequest(model, plan);
  load.set_expert_dtype("int4");
  EXPECT_EQ(w.stub().LoadShard(Context().get(), load, &loaded).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  s = w.stub().LoadShard(Context().get(), LoadRequest(model, plan), &loaded);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const auto reference_shard = *ExpertShard::Load(model.config, *model.checkpoint, plan);
  EXPECT_EQ(loaded.checkpoint_fingerprint(), model.fingerprint);
  EXPECT_EQ(loaded.expert_bytes(), reference_shard->weight_bytes());
  EXPECT_EQ(loaded.moe_layers(), static_cast<uint32_t>(model.config.NumMoeLayers()));

  std::unique_ptr<RingRegion> region = CreateRing(model);
  s = w.stub().AttachRing(Context().get(), AttachRingRequestFor(region->spec()), &attached);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(region->Unlink().ok());
  RingProducer producer(region.get());
  const int64_t h = model.config.hidden_size;

  const Batch batch = RandomBatch(model, 6, 1);
  std::vector<float> out(batch.tokens * h, -1.0f);
  uint64_t seq = *producer.Submit(batch.Request());
  absl::Status ring = producer.WaitResult(seq, out.data(), kWait, w.Liveness());
  ASSERT_TRUE(ring.ok()) << ring;
  EXPECT_LE(MaxAbsDiff(out, Reference(model, plan, batch)), 1e-6f);

  Batch bad = batch;
  bad.ids[5] = -3;
  seq = *producer.Submit(bad.Request());
  ring = producer.WaitResult(seq, out.data(), kWait, w.Liveness());
  EXPECT_EQ(ring.code(), absl::StatusCode::kInvalidArgument) << ring;
  EXPECT_THAT(std::string(ring.message()), HasSubstr("expert id -3 out of range"));

  const Batch next = RandomBatch(model, 8, 2);
  std::vector<float> out2(next.tokens * h);
  seq = *producer.Submit(next.Request());
  ring = producer.WaitResult(seq, out2.data(), kWait, w.Liveness());
  ASSERT_TRUE(ring.ok()) << ring;
  EXPECT_LE(MaxAbsDiff(out2, Reference(model, plan, next)), 1e-6f);

  v1::StatsResponse stats;
  ASSERT_TRUE(w.stub().Stats(Context().get(), {}, &stats).ok());
  EXPECT_EQ(stats.requests(), 2u);
  EXPECT_EQ(stats.tokens(), 14u);
  EXPECT_EQ(stats.errors(), 1u);
  EXPECT_GT(stats.busy_ns(), 0u);
  // Tensor-parallel: every expert's slice is the same size; each request reads each expert once.
  const uint64_t per_expert =
      loaded.expert_bytes() / (model.config.NumMoeLayers() * model.config.moe.num_experts);
  auto distinct = [](std::vector<int32_t> ids) {
    std::sort(ids.begin(), ids.end());
    return static_cast<uint64_t>(std::unique(ids.begin(), ids.end()) - ids.begin());
  };
  EXPECT_EQ(stats.expert_bytes_read(), (distinct(batch.ids) + distinct(next.ids)) * per_expert);

  v1::ShutdownResponse bye;
  ASSERT_TRUE(w.stub().Shutdown(Context().get(), {}, &bye).ok());
  EXPECT_EQ(w.WaitExit(absl::Seconds(5)), 0);
  EXPECT_FALSE(fs::exists(w.socket()));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, WorkerProcessTest,
                         ::testing::Values("qwen3_moe", "deepseek_v3"));

TEST(WorkerProcessFaultTest, SigkillIsNoticedWithin2sAndARestartServesAgain) {
  const FixtureModel model = testing::LoadFixtureModel("qwen3_moe");
  const ShardPlan plan = TensorParallel(1, 2);
  const std::string cpu = std::to_string((*AllowedCpus()).back());
  TempDir dir;
  const std::string socket = dir.path() + "/w.sock";
  std::vector<float> out(8 * model.config.hidden_size);
  const Batch batch = RandomBatch(model, 4, 3);
  {
    WorkerProcess w(socket, {"--cpus", cpu, "--threads", "1"});
    ASSERT_TRUE(w.WaitConnected());
    std::unique_ptr<RingRegion> region = LoadAndAttach(w, model, plan);
    RingProducer producer(region.get());
    uint64_t seq = *producer.Submit(batch.Request());
    ASSERT_TRUE(producer.WaitResult(seq, out.data(), kWait, w.Liveness()).ok());

    const pid_t pid = w.pid();
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    seq = *producer.Submit(batch.Request());
    const absl::Time start = absl::Now();
    const absl::Status s = producer.WaitResult(seq, out.data(), absl::Seconds(30), w.Liveness());
    const absl::Duration took = absl::Now() - start;
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(absl::StrCat("pid ", pid)));
    EXPECT_LT(took, absl::Seconds(2));
    EXPECT_TRUE(fs::exists(socket));  // a SIGKILLed worker cannot clean up: its restart does
  }
  WorkerProcess w(socket, {"--cpus", cpu});
  ASSERT_TRUE(w.WaitConnected());
  std::unique_ptr<RingRegion> region = LoadAndAttach(w, model, plan);
  RingProducer producer(region.get());
  const uint64_t seq = *producer.Submit(batch.Request());
  ASSERT_TRUE(producer.WaitResult(seq, out.data(), kWait, w.Liveness()).ok());
  out.resize(batch.tokens * model.config.hidden_size);
  EXPECT_LE(MaxAbsDiff(out, Reference(model, plan, batch)), 1e-6f);

  ASSERT_EQ(kill(w.pid(), SIGTERM), 0);
  EXPECT_EQ(w.WaitExit(absl::Seconds(5)), 0);
  EXPECT_FALSE(fs::exists(socket));
}

TEST(WorkerProcessFaultTest, RefusesALiveSocketAndBadFlags) {
  TempDir dir;
  const std::string socket = dir.path() + "/w.sock";
  WorkerProcess first(socket, {});
  ASSERT_TRUE(first.WaitConnected());
  WorkerProcess second(socket, {});
  EXPECT_EQ(second.WaitExit(absl::Seconds(10)), 1);
  EXPECT_TRUE(fs::exists(socket));  // still the first worker's
  v1::StatsResponse stats;
  EXPECT_TRUE(first.stub().Stats(Context().get(), {}, &stats).ok());

  WorkerProcess bad_cpus(dir.path() + "/x.sock", {"--cpus", "0-3x"});
  EXPECT_EQ(bad_cpus.WaitExit(absl::Seconds(10)), 1);
  WorkerProcess bad_node(dir.path() + "/y.sock", {"--numa-node", "4000"});
  EXPECT_EQ(bad_node.WaitExit(absl::Seconds(10)), 1);
  EXPECT_FALSE(fs::exists(dir.path() + "/y.sock"));
}

}  // namespace
}  // namespace tandem
