#include "common/checkpoint_fingerprint.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace tandem {
namespace {

// FNV-1a, 64-bit: stable across builds and machines.
class Fnv64 {
 public:
  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) hash_ = (hash_ ^ p[i]) * 0x100000001b3ull;
  }
  void Add(const std::string& s) { Add(s.data(), s.size() + 1); }  // the NUL separates fields
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

}  // namespace

absl::StatusOr<std::string> CheckpointFingerprint(const Checkpoint& checkpoint,
                                                  const std::string& config_path) {
  Fnv64 h;
  std::ifstream config(config_path, std::ios::binary);
  if (!config) return absl::NotFoundError(absl::StrCat("cannot open ", config_path));
  std::stringstream ss;
  ss << config.rdbuf();
  h.Add(ss.str());
  for (const std::string& name : checkpoint.Names()) {
    TANDEM_ASSIGN_OR_RETURN(const TensorView* t, checkpoint.Get(name));
    h.Add(name);
    h.Add(std::string(DTypeName(t->dtype)));
    for (int64_t d : t->shape) h.Add(&d, sizeof d);
    const size_t edge = std::min<size_t>(64, t->nbytes);
    h.Add(t->data, edge);
    h.Add(t->data + t->nbytes - edge, edge);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h.value()));
  return std::string(hex);
}

}  // namespace tandem
