#include "numa_worker/worker_grpc_service.h"

#include "common/grpc_status.h"
#include "spdlog/spdlog.h"

namespace tandem {
namespace {

// Logs a refused call (control-plane calls are rare: one line each is fine at WARN) and maps it.
grpc::Status Reply(const char* rpc, const absl::Status& status) {
  if (!status.ok()) spdlog::warn("{} refused: {}", rpc, status.ToString());
  return ToGrpcStatus(status);
}

template <typename Response>
grpc::Status Reply(const char* rpc, absl::StatusOr<Response> result, Response* response) {
  if (!result.ok()) return Reply(rpc, result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status WorkerGrpcService::Hello(grpc::ServerContext*, const v1::HelloRequest* request,
                                      v1::HelloResponse* response) {
  return Reply("Hello", core_->Hello(*request), response);
}

grpc::Status WorkerGrpcService::LoadShard(grpc::ServerContext*, const v1::LoadShardRequest* request,
                                          v1::LoadShardResponse* response) {
  return Reply("LoadShard", core_->LoadShard(*request), response);
}

grpc::Status WorkerGrpcService::AttachRing(grpc::ServerContext*,
                                           const v1::AttachRingRequest* request,
                                           v1::AttachRingResponse*) {
  return Reply("AttachRing", core_->AttachRing(*request));
}

grpc::Status WorkerGrpcService::Stats(grpc::ServerContext*, const v1::StatsRequest*,
                                      v1::StatsResponse* response) {
  *response = core_->Stats();
  return grpc::Status::OK;
}

grpc::Status WorkerGrpcService::Shutdown(grpc::ServerContext*, const v1::ShutdownRequest*,
                                         v1::ShutdownResponse*) {
  spdlog::info("Shutdown requested by the coordinator");
  on_shutdown_();
  return grpc::Status::OK;
}

}  // namespace tandem
