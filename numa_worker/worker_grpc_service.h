// tandem.v1.WorkerControl over gRPC: a thin adaptor that hands each RPC to WorkerCore and maps
// its absl::Status 1:1 onto grpc::Status (common/grpc_status.h). Shutdown replies OK and then
// calls `on_shutdown`, which must only signal another thread (the server cannot stop from inside
// one of its own handlers). Handlers run on gRPC's threads, concurrently.
#pragma once

#include <functional>

#include "numa_worker/worker_core.h"
#include "tandem/v1/worker.grpc.pb.h"

namespace tandem {

class WorkerGrpcService final : public v1::WorkerControl::Service {
 public:
  // `core` must outlive the service.
  WorkerGrpcService(WorkerCore* core, std::function<void()> on_shutdown)
      : core_(core), on_shutdown_(std::move(on_shutdown)) {}

  grpc::Status Hello(grpc::ServerContext* context, const v1::HelloRequest* request,
                     v1::HelloResponse* response) override;
  grpc::Status LoadShard(grpc::ServerContext* context, const v1::LoadShardRequest* request,
                         v1::LoadShardResponse* response) override;
  grpc::Status AttachRing(grpc::ServerContext* context, const v1::AttachRingRequest* request,
                          v1::AttachRingResponse* response) override;
  grpc::Status Stats(grpc::ServerContext* context, const v1::StatsRequest* request,
                     v1::StatsResponse* response) override;
  grpc::Status Shutdown(grpc::ServerContext* context, const v1::ShutdownRequest* request,
                        v1::ShutdownResponse* response) override;

 private:
  WorkerCore* core_;
  std::function<void()> on_shutdown_;
};

}  // namespace tandem
