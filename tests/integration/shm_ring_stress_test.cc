// Two-process tests of the shared-memory ring (common/shm_ring.h): the test process creates the
// region and is the producer (coordinator); a fork()ed child opens the region by name and is the
// consumer (worker). The child never returns into gtest: it ends with _exit(), its status code
// saying what went wrong.
//
//   * Stress: >= 100,000 round trips with pseudo-random token counts (0 and max included), at
//     times two requests in flight, answered in order but collected in either order. Every
//     payload element is a function of the sequence number, so the child checks the request it
//     read (nothing torn or stale) and the parent checks every element of every result.
//   * Kill: the child is SIGKILLed while the parent waits; the wait ends with Unavailable from
//     the liveness check within 2 s.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/shm_ring.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

constexpr int32_t kWorkLayer = 0;
constexpr int32_t kStopLayer = 1;  // the child answers, then exits 0
constexpr int32_t kHangLayer = 2;  // the child never answers (simulates a long computation)

RingCapacity StressCapacity() {
  RingCapacity c;
  c.depth = 2;
  c.max_tokens = 32;
  c.hidden_size = 96;
  c.max_top_k = 8;
  return c;
}

// Payload of request `seq`: small integers and dyadic fractions, so every sum below is exact.
float HiddenValue(uint64_t seq, int64_t t, int64_t d) {
  return static_cast<float>(static_cast<int64_t>((seq * 131 + t * 17 + d * 3) % 2001) - 1000) *
         0.5f;
}
int32_t ExpertId(uint64_t seq, int64_t t, int64_t j) {
  return static_cast<int32_t>((seq * 7 + t * 3 + j) % 256);
}
float WeightValue(uint64_t seq, int64_t t, int64_t j) {
  return static_cast<float>((seq + t + j) % 8) * 0.125f;
}
// What the child computes: result[t][d] = hidden[t][d] * 2 + sum_j weight[t][j]
//                                         + sum_j id[t][j] / 4 + layer.
float ResultValue(float hidden, float weight_sum, int32_t id_sum, int32_t layer) {
  return hidden * 2.0f + weight_sum + static_cast<float>(id_sum) * 0.25f +
         static_cast<float>(layer);
}

// The parent's liveness check: the child has not exited (reaps it once it has).
class ChildWatch {
 public:
  explicit ChildWatch(pid_t pid) : pid_(pid) {}
  ~ChildWatch() {
    if (!reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
    }
  }
  absl::Status Check() {
    if (!reaped_) {
      const pid_t r = waitpid(pid_, &status_, WNOHANG);
      if (r == 0) return absl::OkStatus();
      reaped_ = true;
    }
    if (WIFSIGNALED(status_)) {
      return absl::UnavailableError(
          absl::StrCat("worker (pid ", pid_, ") was killed by signal ", WTERMSIG(status_)));
    }
    return absl::UnavailableError(
        absl::StrCat("worker (pid ", pid_, ") exited with status ", WEXITSTATUS(status_)));
  }
  // Waits for the child to exit; its exit status (-1 if killed).
  int Join() {
    if (!reaped_) {
      waitpid(pid_, &status_, 0);
      reaped_ = true;
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  }
  LivenessCheck AsCheck() {
    return [this] { return Check(); };
  }

 private:
  pid_t pid_;
  int status_ = 0;
  bool reaped_ = false;
};

// The child: opens the ring by name, checks and answers requests until kStopLayer.
int ChildMain(const RingSpec& spec, pid_t parent) {
  absl::StatusOr<std::unique_ptr<RingRegion>> region = RingRegion::Open(spec);
  if (!region.ok()) {
    std::fprintf(stderr, "child: %s\n", std::string(region.status().message()).c_str());
    return 2;
  }
  RingConsumer consumer(region->get(), RingLayerRange{0, 3});
  const int64_t hidden = spec.capacity.hidden_size;
  auto parent_alive = [parent]() -> absl::Status {
    return getppid() == parent ? absl::OkStatus() : absl::UnavailableError("parent gone");
  };
  for (;;) {
    absl::StatusOr<RingRequestView> view = consumer.WaitRequest(absl::Seconds(30), parent_alive);
    if (!view.ok()) {
      std::fprintf(stderr, "child: %s\n", std::string(view.status().message()).c_str());
      return 3;
    }
    if (view->layer == kHangLayer) {
      for (;;) pause();
    }
    // Check the request against what request `seq` must hold: nothing torn, stale or mixed up.
    const uint64_t seq = view->seq;
    absl::Status verdict;
    std::vector<float> weight_sum(view->num_tokens, 0.0f);
    std::vector<int32_t> id_sum(view->num_tokens, 0);
    for (int64_t t = 0; t < view->num_tokens && verdict.ok(); ++t) {
      for (int64_t j = 0; j < view->top_k; ++j) {
        const int32_t id = view->expert_ids[t * view->top_k + j];
        const float w = view->weights[t * view->top_k + j];
        if (id != ExpertId(seq, t, j) || w != WeightValue(seq, t, j)) {
          verdict = absl::DataLossError(absl::StrCat("request ", seq, ": routing of token ", t));
          break;
        }
        weight_sum[t] += w;
        id_sum[t] += id;
      }
      for (int64_t d = 0; d < hidden && verdict.ok(); ++d) {
        const float x = view->hidden[t * hidden + d];
        if (x != HiddenValue(seq, t, d)) {
          verdict =
              absl::DataLossError(absl::StrCat("request ", seq, ": hidden[", t, "][", d, "] = ", x,
                                               ", expected ", HiddenValue(seq, t, d)));
        }
        view->result[t * hidden + d] = ResultValue(x, weight_sum[t], id_sum[t], view->layer);
      }
    }
    if (!consumer.Complete(seq, verdict).ok()) return 4;
    if (view->layer == kStopLayer) return 0;
  }
}

pid_t SpawnChild(const RingSpec& spec) {
  const pid_t parent = getpid();
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) _exit(ChildMain(spec, parent));
  return pid;
}

// One request of the parent, with storage that outlives its round trip.
struct Pending {
  uint64_t seq = 0;
  int64_t tokens = 0;
  int64_t top_k = 0;
  int32_t layer = 0;
  std::vector<float> hidden, weights, out;
  std::vector<int32_t> ids;
};

void Fill(Pending& p, uint64_t seq, int64_t hidden_size) {
  p.seq = seq;
  p.hidden.resize(p.tokens * hidden_size);
  p.ids.resize(p.tokens * p.top_k);
  p.weights.resize(p.tokens * p.top_k);
  p.out.assign(p.tokens * hidden_size, std::numeric_limits<float>::quiet_NaN());
  for (int64_t t = 0; t < p.tokens; ++t) {
    for (int64_t d = 0; d < hidden_size; ++d)
      p.hidden[t * hidden_size + d] = HiddenValue(seq, t, d);
    for (int64_t j = 0; j < p.top_k; ++j) {
      p.ids[t * p.top_k + j] = ExpertId(seq, t, j);
      p.weights[t * p.top_k + j] = WeightValue(seq, t, j);
    }
  }
}

absl::StatusOr<uint64_t> SubmitPending(RingProducer& producer, Pending& p, uint32_t flags) {
  RingRequest r;
  r.layer = p.layer;
  r.num_tokens = p.tokens;
  r.top_k = p.top_k;
  r.hidden = p.hidden.data();
  r.expert_ids = p.ids.data();
  r.weights = p.weights.data();
  r.flags = flags;
  return producer.Submit(r);
}

// Verifies every element of a collected result; returns the number of mismatches.
int64_t CountMismatches(const Pending& p, int64_t hidden_size) {
  int64_t bad = 0;
  for (int64_t t = 0; t < p.tokens; ++t) {
    float weight_sum = 0.0f;
    int32_t id_sum = 0;
    for (int64_t j = 0; j < p.top_k; ++j) {
      weight_sum += p.weights[t * p.top_k + j];
      id_sum += p.ids[t * p.top_k + j];
    }
    for (int64_t d = 0; d < hidden_size; ++d) {
      const float want = ResultValue(p.hidden[t * hidden_size + d], weight_sum, id_sum, p.layer);
      if (p.out[t * hidden_size + d] != want) ++bad;
    }
  }
  return bad;
}

TEST(ShmRingStressTest, HundredThousandRoundTripsAcrossProcesses) {
  absl::StatusOr<std::unique_ptr<RingRegion>> region =
      RingRegion::Create("stress", StressCapacity());
  ASSERT_TRUE(region.ok()) << region.status();
  const RingSpec spec = (*region)->spec();
  const int64_t hidden = spec.capacity.hidden_size;
  const pid_t pid = SpawnChild(spec);
  ASSERT_GT(pid, 0);
  ChildWatch watch(pid);
  RingProducer producer(region->get());

  constexpr int64_t kRoundTrips = 100'000;
  std::mt19937_64 rng(12345);
  auto random_tokens = [&]() -> int64_t {
    const uint64_t r = rng() % 100;
    if (r < 10) return 0;
    if (r < 15) return spec.capacity.max_tokens;
    if (r < 20) return 1 + static_cast<int64_t>(rng() % spec.capacity.max_tokens);
    return 1 + static_cast<int64_t>(rng() % 4);  // most requests: decode-sized, small
  };
  const auto start = std::chrono::steady_clock::now();
  int64_t done = 0, pairs = 0, reversed = 0, mismatches = 0, elements = 0;
  uint64_t expected_seq = 1;
  Pending slots[2];
  while (done < kRoundTrips) {
    const bool two = (rng() % 4 == 0) && done + 2 <= kRoundTrips;
    const int n = two ? 2 : 1;
    for (int i = 0; i < n; ++i) {
      Pending& p = slots[i];
      p.tokens = random_tokens();
      p.top_k = static_cast<int64_t>(rng() % (spec.capacity.max_top_k + 1));
      p.layer = kWorkLayer;
      Fill(p, expected_seq, hidden);
      // In a pair the first is the deferred request, as in expert deferral.
      absl::StatusOr<uint64_t> seq =
          SubmitPending(producer, p, two && i == 0 ? kRingFlagDeferred : 0);
      ASSERT_TRUE(seq.ok()) << seq.status();
      ASSERT_EQ(*seq, expected_seq);
      ++expected_seq;
    }
    // Collect a pair in either order.
    const bool reverse = two && (rng() % 2 == 0);
    for (int k = 0; k < n; ++k) {
      Pending& p = slots[reverse ? n - 1 - k : k];
      absl::Status s = producer.WaitResult(p.seq, p.out.data(), absl::Seconds(20), watch.AsCheck());
      ASSERT_TRUE(s.ok()) << "request " << p.seq << ": " << s;
      mismatches += CountMismatches(p, hidden);
      elements += p.tokens * hidden;
    }
    if (done == 0) {
      // The child has attached (it answered): the name can go; both mappings stay.
      ASSERT_TRUE((*region)->Unlink().ok());
      EXPECT_FALSE(std::filesystem::exists("/dev/shm" + spec.name));
    }
    done += n;
    pairs += two;
    reversed += reverse;
    ASSERT_EQ(mismatches, 0) << "after request " << expected_seq - 1;
  }
  // Stop the child; it must exit cleanly (it checked every request it read).
  Pending stop;
  stop.layer = kStopLayer;
  Fill(stop, expected_seq, hidden);
  absl::StatusOr<uint64_t> seq = SubmitPending(producer, stop, 0);
  ASSERT_TRUE(seq.ok());
  ASSERT_TRUE(producer.WaitResult(*seq, nullptr, absl::Seconds(20), watch.AsCheck()).ok());
  EXPECT_EQ(watch.Join(), 0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  EXPECT_EQ(producer.last_submitted(), static_cast<uint64_t>(kRoundTrips + 1));
  EXPECT_EQ(producer.outstanding(), 0);
  EXPECT_GT(pairs, 1000);
  EXPECT_GT(reversed, 100);
  std::printf(
      "%lld round trips (%lld pairs in flight, %lld collected reversed), %lld result "
      "elements checked, %.2f s, %.1f us per round trip; producer sleeps %llu wakes %llu\n",
      static_cast<long long>(done), static_cast<long long>(pairs), static_cast<long long>(reversed),
      static_cast<long long>(elements), seconds, seconds * 1e6 / static_cast<double>(done),
      static_cast<unsigned long long>(producer.counters().sleeps),
      static_cast<unsigned long long>(producer.counters().wakes));
}

TEST(ShmRingStressTest, KilledWorkerIsUnavailableWithinTwoSeconds) {
  absl::StatusOr<std::unique_ptr<RingRegion>> region = RingRegion::Create("kill", StressCapacity());
  ASSERT_TRUE(region.ok()) << region.status();
  const RingSpec spec = (*region)->spec();
  const int64_t hidden = spec.capacity.hidden_size;
  const pid_t pid = SpawnChild(spec);
  ASSERT_GT(pid, 0);
  ChildWatch watch(pid);
  RingProducer producer(region->get());

  // Some normal traffic first.
  uint64_t next = 1;
  for (int i = 0; i < 1000; ++i) {
    Pending p;
    p.tokens = i % 5;
    p.top_k = 2;
    Fill(p, next++, hidden);
    absl::StatusOr<uint64_t> seq = SubmitPending(producer, p, 0);
    ASSERT_TRUE(seq.ok());
    ASSERT_TRUE(producer.WaitResult(*seq, p.out.data(), absl::Seconds(20), watch.AsCheck()).ok());
    ASSERT_EQ(CountMismatches(p, hidden), 0);
  }
  ASSERT_TRUE((*region)->Unlink().ok());

  // A request the child takes and never answers; it is killed while the parent waits.
  Pending hang;
  hang.layer = kHangLayer;
  hang.tokens = 1;
  hang.top_k = 1;
  Fill(hang, next++, hidden);
  absl::StatusOr<uint64_t> seq = SubmitPending(producer, hang, 0);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(
      producer.WaitResult(*seq, hang.out.data(), absl::Milliseconds(50), watch.AsCheck()).code(),
      absl::StatusCode::kDeadlineExceeded);  // alive, just slow
  std::thread killer([pid] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    kill(pid, SIGKILL);
  });
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = producer.WaitResult(*seq, hang.out.data(), absl::Seconds(60), watch.AsCheck());
  const auto waited = std::chrono::steady_clock::now() - start;
  killer.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("killed by signal 9"), std::string::npos) << s;
  // 100 ms until the kill, then at most one liveness interval (2 ms) plus scheduling.
  EXPECT_LT(waited, std::chrono::seconds(2));
  std::printf("worker death detected %.1f ms after the wait began (kill at 100 ms)\n",
              std::chrono::duration<double, std::milli>(waited).count());
}

}  // namespace
}  // namespace tandem
