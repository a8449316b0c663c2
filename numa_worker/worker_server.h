// The worker's gRPC server: listens on `unix:PATH` (also `unix:///abs/path`) or `HOST:PORT`
// (port 0 picks a free one), serves WorkerControl plus the standard grpc.health.v1 service
// (SERVING for "" and "tandem.v1.WorkerControl" as soon as it listens), and runs until a Shutdown
// RPC or SIGTERM / SIGINT (noticed within 50 ms). Then it stops the ring loop and the server
// (calls still in flight get 250 ms before they are cancelled; a handler still running, such as
// a LoadShard reading the checkpoint, is waited for) and removes its unix socket file: nothing
// is left behind.
//
// A unix socket path that exists already is removed only if nobody listens on it (a stale file
// of a killed worker); a live listener or a non-socket file is an error.
//
// Threads. Start, then ServeUntilShutdown, on the main thread; SIGTERM and SIGINT must be
// blocked in every thread (pthread_sigmask before any thread is created) so that
// ServeUntilShutdown receives them with sigtimedwait. RequestShutdown: any thread.
#pragma once

#include <signal.h>

#include <atomic>
#include <memory>
#include <string>

#include "grpcpp/server.h"
#include "numa_worker/worker_core.h"
#include "numa_worker/worker_grpc_service.h"

namespace tandem {

class WorkerServer {
 public:
  // InvalidArgument for a malformed address or a unix path too long for sockaddr_un;
  // AlreadyExists if a live server owns the socket path; Unavailable if gRPC cannot listen.
  static absl::StatusOr<std::unique_ptr<WorkerServer>> Start(const std::string& listen,
                                                             WorkerCore* core);
  ~WorkerServer();  // Stop()

  // The address clients connect to (with the chosen port when 0 was asked for).
  const std::string& address() const { return address_; }

  void RequestShutdown() { shutdown_requested_.store(true, std::memory_order_release); }

  // Returns after a Shutdown RPC, RequestShutdown() or one of `signals`, with the server stopped.
  void ServeUntilShutdown(const sigset_t& signals);

  // Stops serving (ring loop, then gRPC) and removes the socket file. Idempotent.
  void Stop();

 private:
  WorkerServer(WorkerCore* core) : core_(core) {}

  WorkerCore* core_;
  std::unique_ptr<WorkerGrpcService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::string socket_path_;  // unix sockets only
  std::atomic<bool> shutdown_requested_{false};
  bool stopped_ = false;
};

// The filesystem path of a "unix:PATH" / "unix:///PATH" address; empty for anything else.
std::string UnixSocketPath(const std::string& address);

}  // namespace tandem
