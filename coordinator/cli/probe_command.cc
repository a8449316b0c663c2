// `tandem probe --addr ADDR [--timeout S]`: waits until a gRPC server (a worker, later the
// coordinator's own API) answers the standard health check with SERVING. Exit 0 when it does;
// the launcher uses it to wait for its workers.
#include <chrono>
#include <thread>

#include "absl/time/clock.h"
#include "common/grpc_channel.h"
#include "coordinator/cli/commands.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace tandem::cli {

Command AddProbeCommand(CLI::App& app) {
  auto addr = std::make_shared<std::string>();
  auto timeout_s = std::make_shared<double>(30.0);
  app.add_option("--addr", *addr, "gRPC address: unix:PATH or HOST:PORT")->required();
  app.add_option("--timeout", *timeout_s, "seconds to keep trying")->capture_default_str();
  return [=]() -> absl::Status {
    const absl::Time deadline = absl::Now() + absl::Seconds(*timeout_s);
    TANDEM_ASSIGN_OR_RETURN(auto channel, ConnectChannel(*addr, absl::Seconds(*timeout_s)));
    auto stub = grpc::health::v1::Health::NewStub(channel);
    std::string last = "no answer";
    while (absl::Now() < deadline) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
      grpc::health::v1::HealthCheckResponse response;
      grpc::Status s = stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &response);
      if (s.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING)
        return absl::OkStatus();
      last = s.ok() ? "not serving" : s.error_message();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return absl::UnavailableError(absl::StrCat(*addr, " not healthy after ", *timeout_s, " s: ", last));
  };
}

}  // namespace tandem::cli
