#include "common/grpc_channel.h"

#include <algorithm>
#include <chrono>

#include "absl/time/clock.h"

namespace tandem {

absl::StatusOr<std::shared_ptr<grpc::Channel>> ConnectChannel(
    const std::string& address, absl::Duration timeout,
    const std::function<absl::Status()>& still_alive) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    const absl::Duration attempt = std::min(absl::Milliseconds(250), deadline - absl::Now());
    if (channel->WaitForConnected(std::chrono::system_clock::now() +
                                  std::chrono::milliseconds(absl::ToInt64Milliseconds(attempt)))) {
      return channel;
    }
    if (still_alive) TANDEM_RETURN_IF_ERROR(still_alive());
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(absl::StrCat(address, ": not reachable within ",
                                                 absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace tandem
