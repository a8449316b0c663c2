#include "coordinator/local_workers.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/str_join.h"
#include "common/topology.h"
#include "spdlog/spdlog.h"

namespace tandem {

std::string DefaultWorkerBinary() {
  if (const char* env = std::getenv("TANDEM_WORKER_BIN"); env && *env) return env;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / "tandem-worker").string();
}

std::vector<std::string> WorkerPlacement::BindFlags() const {
  if (node >= 0) return {"--numa-node", std::to_string(node)};
  return {"--cpus", FormatCpuList(cpus)};
}

absl::StatusOr<std::vector<WorkerPlacement>> PlanWorkers(int count) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<NumaNode> nodes, DiscoverNumaNodes());
  std::vector<WorkerPlacement> plan;
  if (count <= 0 || count == static_cast<int>(nodes.size())) {
    for (const NumaNode& n : nodes) plan.push_back({n.id, n.cpus});
    return plan;
  }
  std::vector<int> all;
  for (const NumaNode& n : nodes) all.insert(all.end(), n.cpus.begin(), n.cpus.end());
  for (std::vector<int>& group : SplitCpus(all, count)) plan.push_back({-1, std::move(group)});
  return plan;
}

absl::StatusOr<std::unique_ptr<LocalWorkers>> LocalWorkers::Spawn(
    int count, const std::string& binary, const std::vector<std::string>& extra_args) {
  std::unique_ptr<LocalWorkers> w(new LocalWorkers());
  w->binary_ = binary.empty() ? DefaultWorkerBinary() : binary;
  if (access(w->binary_.c_str(), X_OK) != 0)
    return absl::NotFoundError(absl::StrCat("worker binary not found: ", w->binary_));
  TANDEM_ASSIGN_OR_RETURN(std::vector<WorkerPlacement> plan, PlanWorkers(count));
  const std::string dir = std::filesystem::temp_directory_path().string();
  // Unique per spawn, so two sets of workers in one process never share a socket (a second
  // set would otherwise reach the first set's workers and take over their rings).
  static std::atomic<int> spawns{0};
  const int spawn = spawns.fetch_add(1);
  count = static_cast<int>(plan.size());
  for (int i = 0; i < count; ++i) {
    Slot slot;
    slot.socket_path = absl::StrCat(dir, "/tandem-", getpid(), "-", spawn, "-w", i, ".sock");
    // Workers log at the coordinator's level, so a quiet coordinator has quiet workers.
    const auto level = spdlog::level::to_string_view(spdlog::get_level());
    slot.args = {"--listen", "unix:" + slot.socket_path, "--id", std::to_string(i),
                 "--log-level", std::string(level.data(), level.size())};
    for (std::string& flag : plan[i].BindFlags()) slot.args.push_back(std::move(flag));
    slot.args.insert(slot.args.end(), extra_args.begin(), extra_args.end());
    WorkerEndpoint e;
    e.index = i;
    e.address = "unix:" + slot.socket_path;
    TANDEM_ASSIGN_OR_RETURN(e.pid, w->Launch(slot));
    w->slots_.push_back(std::move(slot));
    w->endpoints_.push_back(e);
  }
  return w;
}

absl::StatusOr<pid_t> LocalWorkers::Launch(const Slot& slot) {
  std::filesystem::remove(slot.socket_path);
  std::vector<std::string> argv_storage = {binary_};
  argv_storage.insert(argv_storage.end(), slot.args.begin(), slot.args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork failed: ", std::strerror(errno)));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the coordinator
    if (getppid() != parent) _exit(1);
    execv(argv[0], argv.data());
    _exit(127);
  }
  spdlog::info("[coordinator] started {} (pid {})", absl::StrJoin(argv_storage, " "), pid);
  return pid;
}

absl::Status LocalWorkers::Restart(int index) {
  if (index < 0 || index >= static_cast<int>(slots_.size()))
    return absl::InvalidArgumentError(absl::StrCat("no worker ", index));
  WorkerEndpoint& e = endpoints_[index];
  if (e.pid > 0) {
    kill(e.pid, SIGKILL);
    waitpid(e.pid, nullptr, 0);
  }
  TANDEM_ASSIGN_OR_RETURN(e.pid, Launch(slots_[index]));
  return absl::OkStatus();
}

LocalWorkers::~LocalWorkers() {
  for (const WorkerEndpoint& e : endpoints_)
    if (e.pid > 0) kill(e.pid, SIGTERM);
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  for (WorkerEndpoint& e : endpoints_) {
    while (e.pid > 0) {
      const pid_t r = waitpid(e.pid, nullptr, WNOHANG);
      if (r == e.pid || r < 0) break;
      if (absl::Now() > deadline) {
        kill(e.pid, SIGKILL);
        waitpid(e.pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  for (const Slot& s : slots_) std::filesystem::remove(s.socket_path);
}

}  // namespace tandem
