#include "coordinator/worker_client.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "common/grpc_channel.h"
#include "common/grpc_status.h"
#include "common/worker_protocol.h"
#include "coordinator/worker_messages.h"
#include "grpcpp/grpcpp.h"

namespace tandem {
namespace {

void SetDeadline(grpc::ClientContext& ctx, absl::Duration timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
}

}  // namespace

std::string WorkerEndpoint::Name() const {
  return absl::StrCat("worker ", index, " (", address, ")");
}

absl::Status WorkerClient::Annotate(const absl::Status& status) const {
  if (status.ok() || absl::StartsWith(status.message(), endpoint_.Name())) return status;
  return absl::Status(status.code(), absl::StrCat(endpoint_.Name(), ": ", status.message()));
}

absl::StatusOr<std::unique_ptr<WorkerClient>> WorkerClient::Connect(const WorkerEndpoint& endpoint,
                                                                    absl::Duration timeout) {
  std::unique_ptr<WorkerClient> client(new WorkerClient(endpoint));
  // A spawned worker that exits at start-up (bad binding, address in use) fails the wait at once.
  auto channel =
      ConnectChannel(endpoint.address, timeout, [&client] { return client->LivenessStatus(); });
  if (!channel.ok()) return client->Annotate(channel.status());
  client->channel_ = std::move(*channel);
  client->stub_ = tandem::v1::WorkerControl::NewStub(client->channel_);
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  tandem::v1::HelloRequest request;
  request.set_protocol_version(kWorkerProtocolVersion);
  request.set_coordinator_id(absl::StrCat("pid-", getpid()));
  TANDEM_RETURN_IF_ERROR(
      client->Annotate(FromGrpcStatus(client->stub_->Hello(&ctx, request, &client->hello_))));
  if (client->hello_.protocol_version() != kWorkerProtocolVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(endpoint.Name(), ": protocol version mismatch: worker speaks ",
                     client->hello_.protocol_version(), ", coordinator ", kWorkerProtocolVersion));
  }
  return client;
}

absl::Status WorkerClient::LoadShard(const ShardRequest& r, absl::Duration timeout) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  auto request = LoadShardRequestFor(r.model_dir, r.config_path, r.plan, r.fingerprint, r.format);
  if (!r.synthetic_preset.empty()) {
    request.mutable_synthetic()->set_preset(r.synthetic_preset);
    request.mutable_synthetic()->set_layers(static_cast<uint32_t>(r.synthetic_layers));
    request.mutable_synthetic()->set_seed(r.synthetic_seed);
  }
  tandem::v1::LoadShardResponse response;
  return Annotate(FromGrpcStatus(stub_->LoadShard(&ctx, request, &response)));
}

absl::Status WorkerClient::AttachRing(const RingCapacity& capacity, const RingPolling& polling) {
  producer_.reset();
  TANDEM_ASSIGN_OR_RETURN(region_,
                          RingRegion::Create(absl::StrCat("w", endpoint_.index), capacity));
  const auto request = AttachRingRequestFor(region_->spec(), polling);
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Seconds(30));
  tandem::v1::AttachRingResponse response;
  TANDEM_RETURN_IF_ERROR(Annotate(FromGrpcStatus(stub_->AttachRing(&ctx, request, &response))));
  // Both sides hold the mapping now; drop the name so nothing can be left in /dev/shm.
  TANDEM_RETURN_IF_ERROR(region_->Unlink());
  producer_ = std::make_unique<RingProducer>(region_.get());
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> WorkerClient::Submit(const MoeBatch& b) {
  if (!producer_) return absl::FailedPreconditionError(absl::StrCat(endpoint_.Name(), ": no ring"));
  auto seq = producer_->Submit(ToRingRequest(b));
  if (!seq.ok()) return Annotate(seq.status());
  return *seq;
}

absl::Status WorkerClient::CheckAlive() { return Annotate(LivenessStatus()); }

absl::Status WorkerClient::LivenessStatus() {
  if (endpoint_.pid > 0) {
    int status = 0;
    const pid_t r = waitpid(endpoint_.pid, &status, WNOHANG);
    if (r == endpoint_.pid || (r < 0 && kill(endpoint_.pid, 0) != 0)) {
      std::string how = WIFSIGNALED(status)
                            ? absl::StrCat("killed by signal ", WTERMSIG(status))
                            : absl::StrCat("exited with code ", WEXITSTATUS(status));
      endpoint_.pid = -1;  // reaped: never wait for it again
      return absl::UnavailableError(absl::StrCat("worker process ", how));
    }
    return absl::OkStatus();
  }
  if (endpoint_.pid < 0) return absl::UnavailableError("worker process is gone");
  // A worker started elsewhere: its channel state tells when the connection broke.
  if (!channel_) return absl::OkStatus();  // still connecting
  const grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
  if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN)
    return absl::UnavailableError("worker is unreachable (connection lost)");
  return absl::OkStatus();
}

absl::Status WorkerClient::Wait(uint64_t seq, float* out, absl::Duration timeout) {
  if (!producer_) return absl::FailedPreconditionError(absl::StrCat(endpoint_.Name(), ": no ring"));
  return Annotate(producer_->WaitResult(seq, out, timeout, [this] { return LivenessStatus(); }));
}

absl::StatusOr<tandem::v1::StatsResponse> WorkerClient::Stats() {
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Seconds(5));
  tandem::v1::StatsResponse response;
  TANDEM_RETURN_IF_ERROR(
      Annotate(FromGrpcStatus(stub_->Stats(&ctx, tandem::v1::StatsRequest(), &response))));
  return response;
}

absl::Status WorkerClient::Shutdown() {
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Seconds(5));
  tandem::v1::ShutdownResponse response;
  return Annotate(FromGrpcStatus(stub_->Shutdown(&ctx, tandem::v1::ShutdownRequest(), &response)));
}

}  // namespace tandem
