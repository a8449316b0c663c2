// The gRPC API (proto/tandem/v1/inference.proto) and its server: Generate streams a request's
// text from the scheduler, Tokenize, ModelInfo, plus grpc.health.v1 (SetServing). A call that is
// cancelled, or whose deadline passes, cancels its request, which frees its KV cache. Handlers
// run on gRPC's threads; the scheduler's engine thread does the work.
#pragma once

#include <memory>
#include <string>

#include "coordinator/serving/serving_backend.h"
#include "grpcpp/server.h"
#include "tandem/v1/inference.grpc.pb.h"

namespace tandem {

class InferenceService final : public v1::Inference::Service {
 public:
  explicit InferenceService(const BackendSlot& slot) : slot_(slot) {}

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override;
  grpc::Status ModelInfo(grpc::ServerContext* context, const v1::ModelInfoRequest* request,
                         v1::ModelInfoResponse* response) override;

 private:
  const BackendSlot& slot_;
};

// The scheduler's request for a GenerateRequest: InvalidArgument for a bad one.
absl::StatusOr<ServeRequest> ToServeRequest(const v1::GenerateRequest& request,
                                            const ServedModel& model);

class GrpcInferenceServer {
 public:
  // Listens on `address` (HOST:PORT; port 0: any free one, see port()).
  static absl::StatusOr<std::unique_ptr<GrpcInferenceServer>> Start(const std::string& address,
                                                                    const BackendSlot& slot);
  ~GrpcInferenceServer();  // Stop()
  int port() const { return port_; }
  // grpc.health.v1 status of "" and "tandem.v1.Inference".
  void SetServing(bool serving);
  void Stop();

 private:
  explicit GrpcInferenceServer(const BackendSlot& slot) : service_(slot) {}
  InferenceService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace tandem
