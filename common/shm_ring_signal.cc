#include "common/shm_ring_signal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tandem {
namespace {

using Clock = std::chrono::steady_clock;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Sleeps while *futex == 1, at most `wait`; wake-ups, timeouts, EAGAIN and EINTR all just return.
void FutexWait(uint32_t* futex, Clock::duration wait) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  syscall(SYS_futex, futex, FUTEX_WAIT, 1, &ts, nullptr, 0);
}

void FutexWakeAll(uint32_t* futex) {
  syscall(SYS_futex, futex, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

// absl::Duration -> steady_clock duration, saturating (a year counts as forever).
Clock::duration ToClock(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return Clock::duration::zero();
  if (d >= absl::Hours(24 * 365)) return Clock::duration::max();
  return std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(d));
}

Clock::time_point AddSaturating(Clock::time_point t, Clock::duration d) {
  if (d >= Clock::time_point::max() - t) return Clock::time_point::max();
  return t + d;
}

}  // namespace

void PublishSeq(uint64_t* seq, uint32_t* futex, uint64_t value, RingWaitCounters* counters) {
  std::atomic_ref<uint64_t>(*seq).store(value, std::memory_order_seq_cst);
  std::atomic_ref<uint32_t> flag(*futex);
  if (flag.load(std::memory_order_seq_cst) != 0) {
    flag.store(0, std::memory_order_seq_cst);
    FutexWakeAll(futex);
    if (counters != nullptr) ++counters->wakes;
  }
}

absl::StatusOr<uint64_t> WaitSeqChange(uint64_t* seq, uint32_t* futex, uint64_t stale,
                                       absl::Duration timeout, const RingWaitOptions& options,
                                       const LivenessCheck& still_alive,
                                       RingWaitCounters* counters) {
  std::atomic_ref<uint64_t> word(*seq);
  uint64_t value = word.load(std::memory_order_acquire);
  if (value != stale) return value;

  // Spin phase: pause between loads, read the clock only every 64 iterations.
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = AddSaturating(start, ToClock(timeout));
  const Clock::time_point spin_end =
      std::min(deadline, AddSaturating(start, ToClock(options.spin)));
  for (uint32_t i = 1;; ++i) {
    CpuRelax();
    value = word.load(std::memory_order_acquire);
    if (value != stale) return value;
    if ((i & 63) == 0 && Clock::now() >= spin_end) break;
  }

  // Sleep phase: flag the futex word, re-check, sleep; liveness check between sleeps.
  const Clock::duration interval =
      std::max(ToClock(options.liveness_interval), Clock::duration(std::chrono::microseconds(100)));
  std::atomic_ref<uint32_t> flag(*futex);
  Clock::time_point next_liveness = Clock::now();
  absl::StatusOr<uint64_t> outcome;
  for (;;) {
    const Clock::time_point now = Clock::now();
    if (still_alive && now >= next_liveness) {
      absl::Status alive = still_alive();
      if (!alive.ok()) {
        outcome = alive;
        break;
      }
      next_liveness = AddSaturating(now, interval);
    }
    flag.store(1, std::memory_order_seq_cst);
    value = word.load(std::memory_order_seq_cst);
    if (value != stale) {
      outcome = value;
      break;
    }
    if (now >= deadline) {
      outcome = absl::DeadlineExceededError(
          absl::StrCat("no answer within ", absl::FormatDuration(timeout)));
      break;
    }
    Clock::duration sleep = std::min(deadline - now, interval);
    FutexWait(futex, sleep);
    if (counters != nullptr) ++counters->sleeps;
    value = word.load(std::memory_order_acquire);
    if (value != stale) {
      outcome = value;
      break;
    }
  }
  flag.store(0, std::memory_order_relaxed);
  return outcome;
}

RingWaitOptions ApplyPolling(RingWaitOptions base, const RingPolling& polling) {
  auto clamp = [](uint32_t us) { return absl::Microseconds(std::clamp<uint32_t>(us, 10, 20000)); };
  if (polling.spin_us > 0) base.spin = clamp(polling.spin_us);
  if (polling.max_sleep_us > 0) base.liveness_interval = clamp(polling.max_sleep_us);
  return base;
}

}  // namespace tandem
