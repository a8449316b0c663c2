// Connecting to a gRPC server that may still be starting (a worker just spawned, a launcher's
// probe). gRPC's own reconnect backoff can stall a first connection for seconds when the server
// was not listening yet, so each attempt here uses a fresh channel. Callable from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/status.h"
#include "grpcpp/grpcpp.h"

namespace tandem {

// A channel in the READY state, or Unavailable naming `address` once `timeout` has passed.
// `still_alive` (optional) is asked between attempts; its error ends the wait at once (e.g. the
// server process being waited for has exited).
absl::StatusOr<std::shared_ptr<grpc::Channel>> ConnectChannel(
    const std::string& address, absl::Duration timeout,
    const std::function<absl::Status()>& still_alive = nullptr);

}  // namespace tandem
