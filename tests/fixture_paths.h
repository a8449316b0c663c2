// Locating the committed fixtures (tests/fixtures/<arch>/) from tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace tandem::testing {

// The source tree's tests/fixtures, or $TANDEM_FIXTURES_DIR when set (test binaries carried to
// another machine, whose checkout lives elsewhere).
inline std::string FixturesDir() {
  if (const char* dir = std::getenv("TANDEM_FIXTURES_DIR"); dir != nullptr && *dir != '\0')
    return dir;
  return std::string(TANDEM_SOURCE_DIR) + "/tests/fixtures";
}

// Model fixture directories (those with a config.json and a reference.json), sorted.
inline std::vector<std::string> ModelFixtureDirs() {
  std::vector<std::string> dirs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(FixturesDir(), ec)) {
    if (std::filesystem::exists(entry.path() / "config.json") &&
        std::filesystem::exists(entry.path() / "reference.json"))
      dirs.push_back(entry.path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

// max |got[i] - expected[i]| (the sizes must match; the caller asserts that).
template <typename Got>
double MaxAbsError(const std::vector<Got>& got, const std::vector<double>& expected) {
  double max_err = 0;
  for (size_t i = 0; i < expected.size(); ++i)
    max_err = std::max(max_err, std::abs(static_cast<double>(got[i]) - expected[i]));
  return max_err;
}

inline nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

}  // namespace tandem::testing
