// ring_latency: round-trip latency of the shared-memory ring (common/shm_ring.h) between two
// processes pinned to two cores, next to the machine's own limit measured in the same run.
//
//   ring_latency [--cpus A,B] [--iters N] [--warmup W] [--tokens T] [--hidden H] [--top-k K]
//                [--json]
//
// The parent (coordinator side, pinned to A) creates the ring and forks a child (worker side,
// pinned to B) that opens it by name. Three phases, each W warm-up round trips then N timed ones:
//   limit  a cache-line ping-pong: the parent stores an odd number into a shared atomic, the
//          child answers with the next even one; the floor any cross-core handshake pays;
//   limit2 the same handshake over two lines, each written by one side only (the ring's
//          pattern: the request and response words sit on separate lines, so a spinning reader
//          never steals the line its peer is about to write);
//   empty  Submit + WaitResult of requests with num_tokens 0 (the child completes at once);
//   small  requests of T tokens x H hidden, top-k K (the child copies hidden into the result).
// Every round trip is timed alone (steady_clock); the report gives median, p99, p99.9 and mean
// in microseconds, and the ratio ring / limit for both limits. With --json the last line is one
// JSON object.
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/shm_ring.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tandem {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int32_t kStopLayer = 1;
constexpr size_t kLineWords = 64 / sizeof(uint64_t);  // atomics per cache line

struct Options {
  std::string cpus = "0,1";
  int parent_cpu = 0;
  int child_cpu = 1;
  int64_t iters = 200'000;
  int64_t warmup = 20'000;
  int64_t tokens = 4;
  int64_t hidden = 1024;
  int64_t top_k = 8;
  bool json = false;
};

inline void CpuRelax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

absl::Status PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot pin to cpu ", cpu, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

struct Stats {
  double median_us = 0, p99_us = 0, p999_us = 0, mean_us = 0;
};

Stats Summarize(std::vector<int64_t> ns) {
  Stats s;
  if (ns.empty()) return s;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    const size_t i = std::min(ns.size() - 1, static_cast<size_t>(q * (ns.size() - 1) + 0.5));
    return static_cast<double>(ns[i]) / 1000.0;
  };
  s.median_us = at(0.5);
  s.p99_us = at(0.99);
  s.p999_us = at(0.999);
  double sum = 0;
  for (int64_t v : ns) sum += static_cast<double>(v);
  s.mean_us = sum / static_cast<double>(ns.size()) / 1000.0;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Child: answers the ping-pong, then serves the ring until kStopLayer.

int ChildMain(const Options& opt, std::atomic<uint64_t>* pingpong, const RingSpec& spec,
              pid_t parent) {
  if (!PinTo(opt.child_cpu).ok()) return 2;
  const uint64_t rounds = static_cast<uint64_t>(opt.warmup + opt.iters);
  for (uint64_t i = 0; i < rounds; ++i) {
    const uint64_t ping = 2 * i + 1;
    while (pingpong[0].load(std::memory_order_acquire) != ping) CpuRelax();
    pingpong[0].store(ping + 1, std::memory_order_release);
  }
  std::atomic<uint64_t>& ping_line = pingpong[kLineWords];
  std::atomic<uint64_t>& pong_line = pingpong[2 * kLineWords];
  for (uint64_t i = 1; i <= rounds; ++i) {
    while (ping_line.load(std::memory_order_acquire) != i) CpuRelax();
    pong_line.store(i, std::memory_order_release);
  }
  absl::StatusOr<std::unique_ptr<RingRegion>> region = RingRegion::Open(spec);
  if (!region.ok()) {
    std::fprintf(stderr, "child: %s\n", std::string(region.status().message()).c_str());
    return 3;
  }
  RingConsumer consumer(region->get(), RingLayerRange{0, 2});
  auto parent_alive = [parent]() -> absl::Status {
    return getppid() == parent ? absl::OkStatus() : absl::UnavailableError("parent gone");
  };
  for (;;) {
    absl::StatusOr<RingRequestView> view = consumer.WaitRequest(absl::Seconds(60), parent_alive);
    if (!view.ok()) {
      std::fprintf(stderr, "child: %s\n", std::string(view.status().message()).c_str());
      return 4;
    }
    if (view->num_tokens > 0) {
      std::memcpy(view->result, view->hidden, view->num_tokens * spec.capacity.hidden_size * 4);
    }
    if (!consumer.Complete(view->seq, absl::OkStatus()).ok()) return 5;
    if (view->layer == kStopLayer) return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Parent.

std::vector<int64_t> PingPong(const Options& opt, std::atomic<uint64_t>* pingpong) {
  std::vector<int64_t> ns;
  ns.reserve(opt.iters);
  for (int64_t i = 0; i < opt.warmup + opt.iters; ++i) {
    const uint64_t ping = 2 * static_cast<uint64_t>(i) + 1;
    const Clock::time_point t0 = Clock::now();
    pingpong[0].store(ping, std::memory_order_release);
    while (pingpong[0].load(std::memory_order_acquire) != ping + 1) CpuRelax();
    const Clock::time_point t1 = Clock::now();
    if (i >= opt.warmup) ns.push_back((t1 - t0).count());
  }
  return ns;
}

std::vector<int64_t> PingPongTwoLines(const Options& opt, std::atomic<uint64_t>* pingpong) {
  std::atomic<uint64_t>& ping_line = pingpong[kLineWords];
  std::atomic<uint64_t>& pong_line = pingpong[2 * kLineWords];
  std::vector<int64_t> ns;
  ns.reserve(opt.iters);
  for (int64_t i = 1; i <= opt.warmup + opt.iters; ++i) {
    const uint64_t ping = static_cast<uint64_t>(i);
    const Clock::time_point t0 = Clock::now();
    ping_line.store(ping, std::memory_order_release);
    while (pong_line.load(std::memory_order_acquire) != ping) CpuRelax();
    const Clock::time_point t1 = Clock::now();
    if (i > opt.warmup) ns.push_back((t1 - t0).count());
  }
  return ns;
}

absl::StatusOr<std::vector<int64_t>> RingRoundTrips(const Options& opt, RingProducer& producer,
                                                    const LivenessCheck& alive, int64_t tokens) {
  const int64_t hidden = opt.hidden;
  std::vector<float> x(tokens * hidden), out(tokens * hidden), w(tokens * opt.top_k, 0.125f);
  std::vector<int32_t> ids(tokens * opt.top_k, 3);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 977);
  RingRequest request;
  request.num_tokens = tokens;
  request.top_k = tokens > 0 ? opt.top_k : 0;
  request.hidden = x.data();
  request.expert_ids = ids.data();
  request.weights = w.data();
  std::vector<int64_t> ns;
  ns.reserve(opt.iters);
  for (int64_t i = 0; i < opt.warmup + opt.iters; ++i) {
    const Clock::time_point t0 = Clock::now();
    TANDEM_ASSIGN_OR_RETURN(uint64_t seq, producer.Submit(request));
    TANDEM_RETURN_IF_ERROR(producer.WaitResult(seq, out.data(), absl::Seconds(10), alive));
    const Clock::time_point t1 = Clock::now();
    if (i >= opt.warmup) ns.push_back((t1 - t0).count());
  }
  if (tokens > 0 && out != x) return absl::InternalError("payload came back changed");
  return ns;
}

std::string Row(const char* name, const Stats& s) {
  return absl::StrFormat("%-34s %8.2f %8.2f %8.2f %8.2f\n", name, s.median_us, s.p99_us, s.p999_us,
                         s.mean_us);
}

std::string JsonStats(const Stats& s) {
  return absl::StrFormat(R"({"median_us":%.3f,"p99_us":%.3f,"p999_us":%.3f,"mean_us":%.3f})",
                         s.median_us, s.p99_us, s.p999_us, s.mean_us);
}

int Run(const Options& opt) {
  RingCapacity capacity;
  capacity.depth = 2;
  capacity.max_tokens = static_cast<uint32_t>(std::max<int64_t>(opt.tokens, 1));
  capacity.hidden_size = static_cast<uint32_t>(opt.hidden);
  capacity.max_top_k = static_cast<uint32_t>(opt.top_k);
  absl::StatusOr<std::unique_ptr<RingRegion>> region = RingRegion::Create("bench", capacity);
  if (!region.ok()) {
    std::fprintf(stderr, "ring_latency: %s\n", std::string(region.status().message()).c_str());
    return 1;
  }
  void* shared = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
  // Three lines: the one-line ping-pong, then the two lines of the two-line one.
  auto* pingpong = static_cast<std::atomic<uint64_t>*>(shared);
  for (size_t i = 0; i < 3 * kLineWords; ++i) new (&pingpong[i]) std::atomic<uint64_t>(0);

  const RingSpec spec = (*region)->spec();
  const pid_t parent = getpid();
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child < 0) {
    std::perror("fork");
    return 1;
  }
  if (child == 0) _exit(ChildMain(opt, pingpong, spec, parent));

  int child_status = 0;
  bool reaped = false;
  auto fail = [&](const std::string& message) {
    std::fprintf(stderr, "ring_latency: %s\n", message.c_str());
    if (!reaped) {
      kill(child, SIGKILL);
      waitpid(child, nullptr, 0);
    }
    return 1;
  };
  LivenessCheck alive = [&]() -> absl::Status {
    if (!reaped && waitpid(child, &child_status, WNOHANG) == 0) return absl::OkStatus();
    reaped = true;
    return absl::UnavailableError(absl::StrCat("child exited (status ", child_status, ")"));
  };
  if (absl::Status s = PinTo(opt.parent_cpu); !s.ok()) return fail(std::string(s.message()));

  const Stats limit = Summarize(PingPong(opt, pingpong));
  const Stats limit2 = Summarize(PingPongTwoLines(opt, pingpong));
  RingProducer producer(region->get());
  absl::StatusOr<std::vector<int64_t>> empty = RingRoundTrips(opt, producer, alive, 0);
  if (!empty.ok()) return fail(std::string(empty.status().message()));
  (void)(*region)->Unlink();  // the child has attached
  absl::StatusOr<std::vector<int64_t>> small = RingRoundTrips(opt, producer, alive, opt.tokens);
  if (!small.ok()) return fail(std::string(small.status().message()));
  RingRequest stop;
  stop.layer = kStopLayer;
  absl::StatusOr<uint64_t> seq = producer.Submit(stop);
  if (!seq.ok() || !producer.WaitResult(*seq, nullptr, absl::Seconds(10), alive).ok()) {
    return fail("stop request failed");
  }
  if (!reaped) waitpid(child, &child_status, 0);
  reaped = true;
  if (!WIFEXITED(child_status) || WEXITSTATUS(child_status) != 0) return fail("child failed");

  const Stats ring_empty = Summarize(*empty);
  const Stats ring_small = Summarize(*small);
  const std::string small_name =
      absl::StrFormat("ring T=%d H=%d k=%d", opt.tokens, opt.hidden, opt.top_k);
  std::string report = absl::StrFormat(
      "ring_latency: cpus %d,%d, %d timed round trips per phase (after %d warm-up)\n"
      "%-34s %8s %8s %8s %8s\n",
      opt.parent_cpu, opt.child_cpu, opt.iters, opt.warmup, "round trip (us)", "median", "p99",
      "p99.9", "mean");
  report += Row("limit: cache-line ping-pong", limit);
  report += Row("limit2: ping-pong over two lines", limit2);
  report += Row("ring, empty request (T=0)", ring_empty);
  report += Row(small_name.c_str(), ring_small);
  auto ratio_of = [&](const Stats& floor) {
    return floor.median_us > 0 ? ring_empty.median_us / floor.median_us : 0.0;
  };
  const double ratio = ratio_of(limit);
  const double ratio2 = ratio_of(limit2);
  report += absl::StrFormat(
      "ratio ring-empty / limit (median): %.2f, / limit2: %.2f; producer futex sleeps %d, "
      "wakes %d\n",
      ratio, ratio2, producer.counters().sleeps, producer.counters().wakes);
  std::fputs(report.c_str(), stdout);
  if (opt.json) {
    std::printf(
        "{\"bench\":\"ring_latency\",\"cpus\":[%d,%d],\"iters\":%lld,\"limit\":%s,"
        "\"limit_two_lines\":%s,\"ring_empty\":%s,\"ring_small\":%s,\"small_shape\":{\"tokens\":%"
        "lld,\"hidden\":%lld,"
        "\"top_k\":%lld},\"ratio_empty_over_limit\":%.3f,\"ratio_empty_over_limit_two_lines\":%.3f,"
        "\"producer_sleeps\":%llu,"
        "\"producer_wakes\":%llu}\n",
        opt.parent_cpu, opt.child_cpu, static_cast<long long>(opt.iters), JsonStats(limit).c_str(),
        JsonStats(limit2).c_str(), JsonStats(ring_empty).c_str(), JsonStats(ring_small).c_str(),
        static_cast<long long>(opt.tokens), static_cast<long long>(opt.hidden),
        static_cast<long long>(opt.top_k), ratio, ratio2,
        static_cast<unsigned long long>(producer.counters().sleeps),
        static_cast<unsigned long long>(producer.counters().wakes));
  }
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  tandem::Options opt;
  CLI::App app{"Round-trip latency of the shared-memory ring between two pinned processes"};
  app.add_option("--cpus", opt.cpus, "the two CPUs: coordinator side, worker side")
      ->default_val("0,1");
  app.add_option("--iters", opt.iters, "timed round trips per phase")->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "untimed round trips before each phase")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--tokens", opt.tokens, "tokens of the small-payload phase")
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--hidden", opt.hidden, "hidden size")->check(CLI::Range(1, 1 << 16));
  app.add_option("--top-k", opt.top_k, "experts per token")->check(CLI::Range(1, 256));
  app.add_flag("--json", opt.json, "print one JSON object as the last line");
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> parts = absl::StrSplit(opt.cpus, ',');
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &opt.parent_cpu) ||
      !absl::SimpleAtoi(parts[1], &opt.child_cpu) || opt.parent_cpu < 0 || opt.child_cpu < 0 ||
      opt.parent_cpu >= CPU_SETSIZE || opt.child_cpu >= CPU_SETSIZE) {
    std::fprintf(stderr, "ring_latency: --cpus wants two CPU numbers, e.g. 0,1\n");
    return 2;
  }
  if (opt.parent_cpu == opt.child_cpu) {
    std::fprintf(stderr, "ring_latency: warning: both sides on cpu %d (they will time-share)\n",
                 opt.parent_cpu);
  }
  return tandem::Run(opt);
}
