#include "coordinator/serving/inference_service.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "common/grpc_status.h"

namespace tandem {
namespace {

constexpr char kServiceName[] = "tandem.v1.Inference";

nlohmann::ordered_json MessagesJson(
    const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const v1::ChatMessage& m : messages)
    out.push_back({{"role", m.role()}, {"content", m.content()}});
  return out;
}

absl::StatusOr<std::shared_ptr<const ServingBackend>> Ready(const BackendSlot& slot) {
  std::shared_ptr<const ServingBackend> b = slot.Get();
  if (!b) return absl::UnavailableError("the model is loading");
  return b;
}

}  // namespace

absl::StatusOr<ServeRequest> ToServeRequest(const v1::GenerateRequest& request,
                                            const ServedModel& model) {
  const int given = !request.prompt().empty() + (request.prompt_ids_size() > 0) +
                    (request.messages_size() > 0);
  if (given != 1)
    return absl::InvalidArgumentError("give exactly one of prompt, prompt_ids and messages");
  ServeRequest r;
  if (!request.prompt().empty()) {
    if (!model.tokenizer)
      return absl::InvalidArgumentError("this model has no tokenizer: send prompt_ids");
    r.prompt_ids = model.tokenizer->Encode(request.prompt(), /*add_special_tokens=*/true);
  } else if (request.prompt_ids_size() > 0) {
    r.prompt_ids.assign(request.prompt_ids().begin(), request.prompt_ids().end());
  } else {
    TANDEM_ASSIGN_OR_RETURN(r.prompt_ids, ChatPromptIds(model, MessagesJson(request.messages())));
  }
  if (request.max_tokens() < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be at least 1, got ", request.max_tokens()));
  r.max_tokens = request.max_tokens() == 0 ? 16 : request.max_tokens();
  const v1::SamplingOptions& s = request.sampling();
  r.sampling.temperature = s.temperature();
  r.sampling.top_p = s.top_p() == 0 ? 1.0 : s.top_p();
  r.sampling.top_k = s.top_k();
  r.sampling.min_p = s.min_p();
  r.sampling.repetition_penalty = s.repetition_penalty() == 0 ? 1.0 : s.repetition_penalty();
  if (s.has_seed()) r.sampling.seed = s.seed();
  r.stop.assign(request.stop().begin(), request.stop().end());
  r.ignore_eos = request.ignore_eos();
  return r;
}

grpc::Status InferenceService::Generate(grpc::ServerContext* context,
                                        const v1::GenerateRequest* request,
                                        grpc::ServerWriter<v1::GenerateResponse>* writer) {
  absl::StatusOr<std::shared_ptr<const ServingBackend>> b = Ready(slot_);
  if (!b.ok()) return ToGrpcStatus(b.status());
  absl::StatusOr<ServeRequest> r = ToServeRequest(*request, (*b)->model);
  if (!r.ok()) return ToGrpcStatus(r.status());
  r->id = absl::StrCat("grpc-", reinterpret_cast<uintptr_t>(context));
  // The call's deadline bounds the request in the scheduler too.
  const absl::Time deadline = absl::FromChrono(context->deadline());
  if (deadline < absl::InfiniteFuture()) r->timeout = std::max(deadline - absl::Now(), absl::Nanoseconds(1));
  absl::StatusOr<std::shared_ptr<RequestStream>> stream = (*b)->scheduler->Submit(std::move(*r));
  if (!stream.ok()) return ToGrpcStatus(stream.status());
  while (true) {
    for (RequestEvent& e : (*stream)->Next(absl::Milliseconds(100))) {
      if (!e.error.ok()) return ToGrpcStatus(e.error);
      if (e.finish_reason == "timeout")
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the request ran out of time");
      v1::GenerateResponse response;
      response.set_text(e.text);
      for (int32_t id : e.token_ids) response.add_token_ids(id);
      if (e.last()) {
        response.set_finish_reason(e.finish_reason);
        response.mutable_usage()->set_prompt_tokens(e.usage.prompt_tokens);
        response.mutable_usage()->set_completion_tokens(e.usage.completion_tokens);
      }
      if (!writer->Write(response)) {  // the client went away
        (*stream)->Cancel();
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
      if (e.last()) return grpc::Status::OK;
    }
    if (context->IsCancelled()) (*stream)->Cancel();  // its last event ends the loop
  }
}

grpc::Status InferenceService::Tokenize(grpc::ServerContext*, const v1::TokenizeRequest* request,
                                        v1::TokenizeResponse* response) {
  absl::StatusOr<std::shared_ptr<const ServingBackend>> b = Ready(slot_);
  if (!b.ok()) return ToGrpcStatus(b.status());
  const ServedModel& model = (*b)->model;
  if (!model.tokenizer)
    return ToGrpcStatus(absl::FailedPreconditionError("this model has no tokenizer"));
  std::vector<int32_t> ids;
  if (request->messages_size() > 0) {
    if (!request->text().empty())
      return ToGrpcStatus(absl::InvalidArgumentError("give text or messages, not both"));
    absl::StatusOr<std::vector<int32_t>> chat =
        ChatPromptIds(model, MessagesJson(request->messages()));
    if (!chat.ok()) return ToGrpcStatus(chat.status());
    ids = std::move(*chat);
  } else {
    ids = model.tokenizer->Encode(request->text(), request->add_special_tokens());
  }
  for (int32_t id : ids) response->add_ids(id);
  return grpc::Status::OK;
}

grpc::Status InferenceService::ModelInfo(grpc::ServerContext*, const v1::ModelInfoRequest*,
                                         v1::ModelInfoResponse* response) {
  absl::StatusOr<std::shared_ptr<const ServingBackend>> b = Ready(slot_);
  if (!b.ok()) return ToGrpcStatus(b.status());
  const ServedModel& m = (*b)->model;
  response->set_name(m.name);
  response->set_max_model_len(m.max_model_len);
  if (m.config) {
    response->set_model_type(m.config->model_type);
    response->set_vocab_size(m.config->vocab_size);
    response->set_num_layers(m.config->num_layers);
    response->set_num_experts(m.config->moe.num_experts);
    response->set_experts_per_token(m.config->moe.top_k);
    for (int32_t id : m.config->eos_token_ids) response->add_eos_token_ids(id);
  }
  response->set_device(m.device);
  response->set_experts(m.experts);
  response->set_has_chat_template(m.chat_template != nullptr);
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<GrpcInferenceServer>> GrpcInferenceServer::Start(
    const std::string& address, const BackendSlot& slot) {
  std::unique_ptr<GrpcInferenceServer> s(new GrpcInferenceServer(slot));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &s->port_);
  builder.RegisterService(&s->service_);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " for gRPC (in use, or not an address here)"));
  }
  s->SetServing(false);
  return s;
}

void GrpcInferenceServer::SetServing(bool serving) {
  if (!server_) return;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(serving);
    health->SetServingStatus(kServiceName, serving);
  }
}

GrpcInferenceServer::~GrpcInferenceServer() { Stop(); }

void GrpcInferenceServer::Stop() {
  if (!server_) return;
  SetServing(false);
  // Open streams end when their requests do (the scheduler cancels what is left on shutdown).
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
  server_.reset();
}

}  // namespace tandem
