// Shared by the worker fault tests (CPU and GPU coordinator): kill a spawned worker while the
// model generates, and check the failure and the recovery the runtime promises: the request fails
// with Unavailable naming the worker within 2 s, the next one fails fast while it is down, and
// once it is restarted (and the executor told) generation works again.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/generator.h"
#include "coordinator/loaded_model.h"
#include "coordinator/remote_expert_executor.h"
#include "gtest/gtest.h"

namespace tandem::testing {

inline absl::StatusOr<GenerateResult> GreedyIds(LoadedModel& m, const std::vector<int32_t>& prompt,
                                                int64_t n) {
  GenerateRequest request;
  request.prompt_ids = prompt;
  request.max_tokens = n;
  request.ignore_eos = true;
  return Generate(*m.engine, nullptr, m.max_model_len, request);
}

// Kills worker 1 of `model` (2 or more spawned workers) 300 ms into continuous generation and
// checks the failure and recovery; `label` prefixes the printed timing.
inline void KillWorkerDuringGenerationAndRecover(LoadedModel& model, const std::string& label) {
  auto* executor = dynamic_cast<RemoteExpertExecutor*>(&model.engine->experts());
  ASSERT_NE(executor, nullptr);
  const std::vector<int32_t> prompt = {1, 2, 3, 4};
  ASSERT_TRUE(GreedyIds(model, prompt, 4).ok());

  const pid_t victim = model.local_workers->endpoints()[1].pid;
  std::atomic<int64_t> killed_at_us{0};
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    killed_at_us = absl::ToUnixMicros(absl::Now());
    kill(victim, SIGKILL);
  });
  absl::Status failure;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (failure.ok() && absl::Now() < give_up) {
    auto r = GreedyIds(model, prompt, 64);
    if (!r.ok()) failure = r.status();
  }
  const int64_t failed_at_us = absl::ToUnixMicros(absl::Now());
  killer.join();
  ASSERT_FALSE(failure.ok()) << "generation never failed after the worker was killed";
  EXPECT_EQ(failure.code(), absl::StatusCode::kUnavailable) << failure;
  EXPECT_NE(std::string(failure.message()).find("worker 1"), std::string::npos) << failure;
  std::printf("[ %s ] request failed %.1f ms after the worker was killed: %s\n", label.c_str(),
              (failed_at_us - killed_at_us.load()) / 1000.0,
              std::string(failure.message()).c_str());
  EXPECT_LT(failed_at_us - killed_at_us.load(), 2'000'000) << "the failure took more than 2 s";

  // Still usable: the next request fails fast while the worker is down...
  auto down = GreedyIds(model, prompt, 2);
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  // ...and succeeds once the worker is restarted.
  ASSERT_TRUE(model.local_workers->Restart(1).ok());
  executor->UpdateEndpoint(model.local_workers->endpoints()[1]);
  absl::StatusOr<GenerateResult> again;
  for (int attempt = 0; attempt < 50; ++attempt) {  // the new process needs a moment to listen
    again = GreedyIds(model, prompt, 8);
    if (again.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ids.size(), 8u);
}

}  // namespace tandem::testing
