// The OpenAI API's wire format for /v1/completions and /v1/chat/completions: request bodies
// parsed and checked into a ServeRequest (a wrong type, a missing field or a value out of range is
// an InvalidArgument naming the field), and the JSON of responses, stream chunks and errors
// ({"error": {"message", "type", "code"}}). No I/O; any thread.
#pragma once

#include <string>

#include "coordinator/serving/request_stream.h"
#include "coordinator/serving/scheduler.h"
#include "coordinator/serving/serving_backend.h"
#include "nlohmann/json.hpp"

namespace tandem {

struct CompletionRequest {
  ServeRequest request;
  bool chat = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string model;
};

// `chat`: a /v1/chat/completions body (messages), else /v1/completions (prompt). NotFound for a
// model other than the served one.
absl::StatusOr<CompletionRequest> ParseCompletionRequest(const std::string& body, bool chat,
                                                         const ServedModel& model);

// {"error": {"message", "type", "code"}}, the type and code from the status (400
// invalid_request_error, 404 not_found_error, 429 rate_limit_exceeded, 503 service_unavailable,
// 504 timeout, 500 internal_error).
int HttpStatusFor(const absl::Status& status);
nlohmann::json ErrorBody(const absl::Status& status);

// The whole response of a non-streaming request, from its collected text and events.
nlohmann::json CompletionResponse(const CompletionRequest& request, const std::string& id,
                                  int64_t created, const std::string& text,
                                  const std::string& finish_reason, const TokenUsage& usage);
// One SSE chunk: `text` (and the role on a chat stream's first chunk), `finish_reason` ("" while
// running).
nlohmann::json StreamChunk(const CompletionRequest& request, const std::string& id,
                           int64_t created, const std::string& text,
                           const std::string& finish_reason, bool first);
// The final usage-only chunk of stream_options.include_usage.
nlohmann::json UsageChunk(const CompletionRequest& request, const std::string& id,
                          int64_t created, const TokenUsage& usage);

}  // namespace tandem
