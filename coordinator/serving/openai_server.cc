#include "coordinator/serving/openai_server.h"

#include <httplib.h>

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "spdlog/spdlog.h"

namespace tandem {
namespace {

// JSON text; invalid UTF-8 (never expected: the detokenizer emits U+FFFD) is replaced, not thrown.
std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void SendError(httplib::Response& res, const absl::Status& status) {
  res.status = HttpStatusFor(status);
  res.set_content(Dump(ErrorBody(status)), "application/json");
}

int64_t UnixSeconds() { return absl::ToUnixSeconds(absl::Now()); }

std::string NewRequestId(bool chat) {
  static std::atomic<uint64_t> next{0};
  return absl::StrCat(chat ? "chatcmpl-" : "cmpl-", absl::ToUnixMicros(absl::Now()), "-",
                      next.fetch_add(1));
}

std::string SseEvent(const nlohmann::json& data) { return "data: " + Dump(data) + "\n\n"; }

}  // namespace

OpenAiServer::OpenAiServer(const BackendSlot& slot, ServingMetrics& metrics, int threads)
    : metrics_(metrics), http_(std::make_unique<httplib::Server>()), slot_(slot) {
  const int pool = std::max(threads, 4);
  http_->new_task_queue = [pool] { return new httplib::ThreadPool(pool); };
  http_->set_payload_max_length(8 << 20);
  Routes();
}

OpenAiServer::~OpenAiServer() { Stop(); }

absl::Status OpenAiServer::Start(const std::string& host, int port) {
  // cpp-httplib listens with a backlog of 5 (compiled into Debian's library): a burst of clients
  // connecting at once would overflow it. Keep the socket to raise the backlog after its bind.
  int listen_fd = -1;
  http_->set_socket_options([&listen_fd](int fd) {
    listen_fd = fd;
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  port_ = port == 0 ? http_->bind_to_any_port(host) : (http_->bind_to_port(host, port) ? port : -1);
  if (port_ <= 0)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port,
                                               " (in use, or not an address of this machine)"));
  if (listen_fd >= 0 && ::listen(listen_fd, SOMAXCONN) != 0)
    spdlog::warn("[http] could not raise the listen backlog: {}", strerror(errno));
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  return absl::OkStatus();
}

void OpenAiServer::Stop() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

void OpenAiServer::Routes() {
  http_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    auto b = backend();
    if (absl::Status status = BackendHealth(b.get()); !status.ok()) return SendError(res, status);
    res.status = 200;
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    auto b = backend();
    res.set_content(metrics_.RenderPrometheus(b ? b->model.name : ""),
                    "text/plain; version=0.0.4");
  });
  http_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    auto b = backend();
    nlohmann::json data = nlohmann::json::array();
    if (b) {
      data.push_back({{"id", b->model.name},
                      {"object", "model"},
                      {"created", UnixSeconds()},
                      {"owned_by", "tandem"},
                      {"max_model_len", b->model.max_model_len}});
    }
    res.set_content(Dump(nlohmann::json({{"object", "list"}, {"data", data}})),
                    "application/json");
  });
  for (const bool chat : {false, true}) {
    http_->Post(chat ? "/v1/chat/completions" : "/v1/completions",
                [this, chat](const httplib::Request& req, httplib::Response& res) {
      auto b = backend();
      if (!b) return SendError(res, absl::UnavailableError("the model is loading"));
      absl::StatusOr<CompletionRequest> parsed = ParseCompletionRequest(req.body, chat, b->model);
      if (!parsed.ok()) return SendError(res, parsed.status());
      const std::string id = NewRequestId(chat);
      parsed->request.id = id;
      absl::StatusOr<std::shared_ptr<RequestStream>> stream =
          b->scheduler->Submit(parsed->request);
      if (!stream.ok()) return SendError(res, stream.status());
      const int64_t created = UnixSeconds();
      if (!parsed->stream) {
        std::string text;
        while (true) {
          for (RequestEvent& e : (*stream)->Next(absl::Milliseconds(200))) {
            text += e.text;
            if (!e.error.ok()) return SendError(res, e.error);
            if (e.last()) {
              res.set_content(
                  Dump(CompletionResponse(*parsed, id, created, text, e.finish_reason, e.usage)),
                  "application/json");
              return;
            }
          }
        }
      }
      auto request = std::make_shared<CompletionRequest>(std::move(*parsed));
      auto first = std::make_shared<bool>(true);
      std::shared_ptr<RequestStream> events = *stream;
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider(
          "text/event-stream",
          [request, events, id, created, first](size_t, httplib::DataSink& sink) {
            for (RequestEvent& e : events->Next(absl::Milliseconds(200))) {
              std::string out;
              if (!e.error.ok()) {
                out = SseEvent(ErrorBody(e.error));
              } else if (!e.text.empty() || e.last() || *first) {
                out = SseEvent(StreamChunk(*request, id, created, e.text, e.finish_reason, *first));
                *first = false;
              }
              if (e.last() && e.error.ok() && request->include_usage)
                out += SseEvent(UsageChunk(*request, id, created, e.usage));
              if (e.last()) out += "data: [DONE]\n\n";
              if (!out.empty() && !sink.write(out.data(), out.size())) {
                events->Cancel();
                return false;
              }
              if (e.last()) {
                sink.done();
                return true;
              }
            }
            if (!sink.is_writable()) {
              events->Cancel();
              return false;
            }
            return true;
          },
          [events](bool success) {
            if (!success) events->Cancel();  // the client went away mid-stream
          });
    });
  }
  http_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      SendError(res, absl::NotFoundError(absl::StrCat("no route ", req.method, " ", req.path)));
    } else if (res.status == 413) {
      SendError(res, absl::InvalidArgumentError("the request body is too large (8 MiB at most)"));
      res.status = 413;
    }
  });
}

}  // namespace tandem
