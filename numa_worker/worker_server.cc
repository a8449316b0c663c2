#include "numa_worker/worker_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/match.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "spdlog/spdlog.h"

namespace tandem {
namespace {

constexpr char kServiceName[] = "tandem.v1.WorkerControl";

// Removes a stale socket file left by a killed worker; refuses to steal a live one.
absl::Status ClaimSocketPath(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path is ", path.size(),
                                                   " bytes, the limit is ",
                                                   sizeof(addr.sun_path) - 1, ": ", path));
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return absl::OkStatus();  // free
  if (!S_ISSOCK(st.st_mode))
    return absl::AlreadyExistsError(absl::StrCat(path, " exists and is not a socket"));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  if (live) return absl::AlreadyExistsError(absl::StrCat("another server listens on ", path));
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    return absl::InternalError(absl::StrCat("removing stale ", path, ": ", std::strerror(errno)));
  spdlog::info("removed stale socket {}", path);
  return absl::OkStatus();
}

}  // namespace

std::string UnixSocketPath(const std::string& address) {
  if (!absl::StartsWith(address, "unix:")) return "";
  std::string path = address.substr(5);
  if (absl::StartsWith(path, "//")) path = path.substr(2);  // unix:///abs/path
  return path;
}

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::Start(const std::string& listen,
                                                                  WorkerCore* core) {
  std::unique_ptr<WorkerServer> s(new WorkerServer(core));
  if (listen.empty()) return absl::InvalidArgumentError("--listen is empty");
  // Owned (and removed at Stop) only once this server listens on it.
  const std::string socket_path = UnixSocketPath(listen);
  if (absl::StartsWith(listen, "unix:")) {
    if (socket_path.empty()) return absl::InvalidArgumentError(absl::StrCat("no path in ", listen));
    TANDEM_RETURN_IF_ERROR(ClaimSocketPath(socket_path));
  } else if (listen.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen ", listen, ": expected unix:PATH or HOST:PORT"));
  }
  s->service_ =
      std::make_unique<WorkerGrpcService>(core, [raw = s.get()] { raw->RequestShutdown(); });
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: two workers could then share one TCP port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || port == 0) {
    if (s->server_ != nullptr) s->server_->Shutdown();
    s->server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen, " (address in use, or no permission?)"));
  }
  s->socket_path_ = socket_path;
  if (socket_path.empty()) {
    s->address_ = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
  } else {
    s->address_ = "unix:" + socket_path;
  }
  if (grpc::HealthCheckServiceInterface* health = s->server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(kServiceName, true);
  }
  return s;
}

WorkerServer::~WorkerServer() { Stop(); }

void WorkerServer::ServeUntilShutdown(const sigset_t& signals) {
  const timespec poll{0, 50 * 1000 * 1000};
  while (!shutdown_requested_.load(std::memory_order_acquire)) {
    siginfo_t info;
    const int sig = sigtimedwait(&signals, &info, &poll);
    if (sig > 0) {
      spdlog::info("received signal {} ({}): shutting down", sig, strsignal(sig));
      RequestShutdown();
    }
  }
  Stop();
}

void WorkerServer::Stop() {
  if (stopped_ || server_ == nullptr) return;  // never started: nothing to undo
  stopped_ = true;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService())
    health->SetServingStatus(false);
  core_->StopServing();
  // The grace period bounds the wait for clients that keep their connection open (gRPC 1.51
  // waits out the deadline then); a handler still running (a LoadShard) is waited for anyway.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(250));
  server_->Wait();
  if (!socket_path_.empty() && unlink(socket_path_.c_str()) != 0 && errno != ENOENT)
    spdlog::warn("could not remove {}: {}", socket_path_, std::strerror(errno));
  spdlog::info("stopped");
}

}  // namespace tandem
