// Tests for common/topology.h: CPU list parsing and formatting, splitting one node into N
// groups, discovery (hwloc and a fake sysfs tree), and binding the calling thread.
#include <sched.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/topology.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(TopologyParseCpuListTest, RangesSinglesAndStrides) {
  EXPECT_THAT(*ParseCpuList("0-3,8,10-11"), ElementsAre(0, 1, 2, 3, 8, 10, 11));
  EXPECT_THAT(*ParseCpuList("5"), ElementsAre(5));
  EXPECT_THAT(*ParseCpuList(" 1 , 3-4 \n"), ElementsAre(1, 3, 4));
  EXPECT_THAT(*ParseCpuList("0-7:2"), ElementsAre(0, 2, 4, 6));
  EXPECT_THAT(*ParseCpuList("4,1,1,0-1"), ElementsAre(0, 1, 4));  // sorted, unique
}

TEST(TopologyParseCpuListTest, RejectsMalformedLists) {
  for (const char* bad : {"", " ", "a", "3-1", "-1", "1-", "1,,2", "0-99999999", "1:0", "1.5"}) {
    absl::StatusOr<std::vector<int>> cpus = ParseCpuList(bad);
    EXPECT_EQ(cpus.status().code(), absl::StatusCode::kInvalidArgument) << "'" << bad << "'";
  }
  EXPECT_THAT(std::string(ParseCpuList("0,x-2").status().message()), HasSubstr("\"x-2\""));
}

TEST(TopologyFormatCpuListTest, CompactsRuns) {
  EXPECT_EQ(FormatCpuList({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(FormatCpuList({3, 1, 2, 2}), "1-3");
  EXPECT_EQ(FormatCpuList({7}), "7");
  EXPECT_EQ(FormatCpuList({}), "");
  EXPECT_THAT(*ParseCpuList(FormatCpuList({0, 2, 4, 5, 6, 9})), ElementsAre(0, 2, 4, 5, 6, 9));
}

TEST(TopologySplitCpusTest, BalancedContiguousGroups) {
  const std::vector<int> cpus = {0, 1, 2, 3, 4, 5, 6, 7};
  const auto groups = SplitCpus(cpus, 3);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_THAT(groups[0], ElementsAre(0, 1, 2));
  EXPECT_THAT(groups[1], ElementsAre(3, 4, 5));
  EXPECT_THAT(groups[2], ElementsAre(6, 7));
  EXPECT_THAT(SplitCpus(cpus, 1)[0], ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  const auto halves = SplitCpus(cpus, 2);
  EXPECT_THAT(halves[0], ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(halves[1], ElementsAre(4, 5, 6, 7));
}

TEST(TopologySplitCpusTest, KeepsTheGivenOrder) {
  const auto groups = SplitCpus({8, 9, 0, 1}, 2);
  EXPECT_THAT(groups[0], ElementsAre(8, 9));
  EXPECT_THAT(groups[1], ElementsAre(0, 1));
}

TEST(TopologySplitCpusTest, FewerCpusThanGroupsShareCores) {
  const auto groups = SplitCpus({0, 1}, 3);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_THAT(groups[0], ElementsAre(0));
  EXPECT_THAT(groups[1], ElementsAre(1));
  EXPECT_THAT(groups[2], ElementsAre(0));
}

TEST(TopologySplitCpusTest, DegenerateInputs) {
  EXPECT_TRUE(SplitCpus({0, 1}, 0).empty());
  const auto empty = SplitCpus({}, 2);
  ASSERT_EQ(empty.size(), 2u);
  EXPECT_TRUE(empty[0].empty());
}

TEST(TopologyDiscoverTest, AtLeastOneNodeWithUsableCpus) {
  absl::StatusOr<std::vector<NumaNode>> nodes = DiscoverNumaNodes();
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  ASSERT_GE(nodes->size(), 1u);
  absl::StatusOr<std::vector<int>> allowed = AllowedCpus();
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  ASSERT_FALSE(allowed->empty());
  std::vector<int> seen;
  for (const NumaNode& node : *nodes) {
    EXPECT_GE(node.id, 0);
    ASSERT_FALSE(node.cpus.empty()) << "node " << node.id;
    EXPECT_TRUE(std::is_sorted(node.cpus.begin(), node.cpus.end()));
    for (int c : node.cpus) {
      EXPECT_TRUE(std::binary_search(allowed->begin(), allowed->end(), c)) << c;
      seen.push_back(c);
    }
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_TRUE(std::adjacent_find(seen.begin(), seen.end()) == seen.end()) << "a CPU in two nodes";
  EXPECT_GT(MachineMemoryBytes(), 0u);
}

TEST(TopologyDiscoverTest, SysfsTree) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("tandem-topo-" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "node0");
  fs::create_directories(root / "node2");
  fs::create_directories(root / "power");  // not a node
  std::ofstream(root / "node0" / "cpulist") << "0-3,8\n";
  std::ofstream(root / "node0" / "meminfo") << "Node 0 MemTotal:       2048 kB\n"
                                               "Node 0 MemFree:        1024 kB\n";
  std::ofstream(root / "node2" / "cpulist") << "\n";  // memory-only node
  std::ofstream(root / "possible") << "0,2\n";
  absl::StatusOr<std::vector<NumaNode>> nodes = DiscoverNumaNodesFromSysfs(root.string());
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].id, 0);
  EXPECT_THAT((*nodes)[0].cpus, ElementsAre(0, 1, 2, 3, 8));
  EXPECT_EQ((*nodes)[0].memory_bytes, 2048u * 1024);
  EXPECT_EQ((*nodes)[1].id, 2);
  EXPECT_TRUE((*nodes)[1].cpus.empty());
  fs::remove_all(root);
  EXPECT_EQ(DiscoverNumaNodesFromSysfs(root.string()).status().code(), absl::StatusCode::kNotFound);
}

TEST(TopologyBindTest, PinsTheCallingThreadOnly) {
  const std::vector<int> allowed = *AllowedCpus();
  const int cpu = allowed.back();
  std::thread([&] {
    ASSERT_TRUE(PinThreadToCpu(cpu).ok());
    cpu_set_t set;
    CPU_ZERO(&set);
    ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
    EXPECT_EQ(CPU_COUNT(&set), 1);
    EXPECT_TRUE(CPU_ISSET(cpu, &set));
  }).join();
  EXPECT_EQ(*AllowedCpus(), allowed);  // this thread is untouched
  EXPECT_EQ(PinThreadToCpus({}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PinThreadToCpu(-1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(TopologyBindTest, MemoryBindingIsBestEffortWithAClearError) {
  EXPECT_EQ(BindMemoryToNode(-1).code(), absl::StatusCode::kInvalidArgument);
  const int node = (*DiscoverNumaNodes())[0].id;
  std::thread([&] {  // the memory policy is per thread: keep it off the test's main thread
    const absl::Status s = BindMemoryToNode(node);
    if (!s.ok()) {
      EXPECT_THAT(std::string(s.message()), HasSubstr("set_mempolicy")) << s;
    }
  })
      .join();
  std::thread([&] {
    // A node that cannot exist is refused by the kernel, never silently accepted.
    EXPECT_FALSE(BindMemoryToNode(4000).ok());
  }).join();
}

}  // namespace
}  // namespace tandem
