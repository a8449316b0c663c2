// `tandem-worker`: one NUMA worker process (DESIGN.md, "Processes").
//
//   tandem-worker --listen unix:PATH|HOST:PORT [--numa-node N | --cpus LIST] [--threads T]
//                 [--id ID] [--log-level L]
//
// Binds its memory and threads to the node or CPU set, serves tandem.v1.WorkerControl and
// grpc.health.v1 on --listen, and exits 0 after a Shutdown RPC, SIGTERM or SIGINT (removing its
// unix socket). Exit 1 when it cannot start (bad binding, address in use); CLI errors as CLI11.
// Logs go to stderr, each line tagged "[worker ID]".
#include <signal.h>
#include <unistd.h>

#include <string>

#include "CLI/CLI.hpp"
#include "common/topology.h"
#include "numa_worker/cpu_binding.h"
#include "numa_worker/worker_core.h"
#include "numa_worker/worker_server.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace {

void SetUpLogging(const std::string& id, const std::string& level) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("tandem-worker"));
  spdlog::set_pattern(absl::StrCat("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] [worker ", id, "] %v"));
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tandem-worker: serves one NUMA node's slice of the routed experts"};
  std::string listen, cpus, id, log_level = "info", cpu_kernel = "auto", schedule = "dynamic";
  int numa_node = -1, threads = 0;
  app.add_option("--listen", listen, "gRPC address: unix:PATH or HOST:PORT")->required();
  auto* node_opt =
      app.add_option("--numa-node", numa_node, "bind memory and threads to this NUMA node")
          ->check(CLI::NonNegativeNumber);
  app.add_option("--cpus", cpus, "bind threads to this CPU list, e.g. 0-3,8")->excludes(node_opt);
  app.add_option("--threads", threads, "compute threads (default: one per core of the set)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--id", id, "name in logs and Hello (default: the NUMA node, else the pid)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  app.add_option("--cpu-kernel", cpu_kernel, "expert kernel: auto|reference|avx512|amx")
      ->capture_default_str();
  app.add_option("--schedule", schedule,
                 "expert tasks to threads: dynamic (shared counter) or static (fixed slices)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // Before any thread exists: every thread inherits the mask, so only sigtimedwait sees these.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (id.empty()) id = numa_node >= 0 ? std::to_string(numa_node) : std::to_string(getpid());
  SetUpLogging(id, log_level);

  absl::StatusOr<tandem::CpuBinding> binding = tandem::ResolveCpuBinding(numa_node, cpus, threads);
  if (!binding.ok()) {
    spdlog::error("{}", binding.status().ToString());
    return 1;
  }
  if (absl::Status s = tandem::ApplyProcessBinding(*binding); !s.ok()) {
    spdlog::error("cannot bind to {}: {}", tandem::DescribeBinding(*binding), s.ToString());
    return 1;
  }

  absl::StatusOr<tandem::CpuKernel> kernel = tandem::ParseCpuKernel(cpu_kernel);
  if (kernel.ok()) kernel = tandem::ResolveCpuKernel(*kernel);
  if (!kernel.ok()) {
    spdlog::error("{}", std::string(kernel.status().message()));
    return 1;
  }
  absl::StatusOr<tandem::MoeSchedule> moe_schedule = tandem::ParseMoeSchedule(schedule);
  if (!moe_schedule.ok()) {
    spdlog::error("--schedule: {}", std::string(moe_schedule.status().message()));
    return 1;
  }
  tandem::WorkerIdentity identity{id, *binding, *kernel, *moe_schedule};
  // Idle, the ring loop sleeps on the futex and checks for a stop every 20 ms; a request wakes it
  // at once (after a 50 us spin).
  tandem::RingWaitOptions ring_wait;
  ring_wait.liveness_interval = absl::Milliseconds(20);
  tandem::WorkerCore core(identity, ring_wait);
  absl::StatusOr<std::unique_ptr<tandem::WorkerServer>> server =
      tandem::WorkerServer::Start(listen, &core);
  if (!server.ok()) {
    spdlog::error("{}", server.status().ToString());
    return 1;
  }
  spdlog::info("pid {} listening on {}; {}; isa {}; schedule {}", getpid(), (*server)->address(),
               tandem::DescribeBinding(*binding), tandem::CpuKernelName(identity.cpu_kernel),
               tandem::MoeScheduleName(identity.schedule));
  (*server)->ServeUntilShutdown(signals);
  return 0;
}
