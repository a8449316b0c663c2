// Constants both ends of the coordinator <-> worker control plane agree on.
#pragma once

#include <cstdint>

namespace tandem {

// Bumped whenever proto/tandem/v1/worker.proto or the ring layout changes incompatibly. Hello
// refuses a peer with another version.
inline constexpr uint32_t kWorkerProtocolVersion = 1;

}  // namespace tandem
