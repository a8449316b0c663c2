// The POSIX shared-memory object behind one ring (layout: shm_ring_layout.h).
//
// Lifecycle: the coordinator Create()s the region ("/tandem-<pid>-<tag>-<random>" in /dev/shm,
// sized with ftruncate + posix_fallocate so a too-small /dev/shm is an error now, not a SIGBUS
// later), announces spec() to the worker over gRPC, and calls Unlink() as soon as the worker
// reports it attached: from then on only the two mappings keep the memory alive, so nothing is
// left in /dev/shm whichever process dies. The creator's destructor unlinks if that never
// happened. The worker Open()s the region by name and validates it against the announced spec
// before anything else touches it: magic, layout version, sizes of the file and of every field.
//
// Thread safety: Create/Open from any thread; a RingRegion is immutable afterwards except for
// Unlink(), which must not race with itself. The mapping (base()) is shared with another process
// and is read and written only through RingProducer / RingConsumer (shm_ring.h), or by tests.
// Header fields are validated once at Open(); capacity() and layout() are this process's
// validated copies and never re-read from shared memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/shm_ring_layout.h"
#include "common/status.h"

namespace tandem {

class RingRegion {
 public:
  // Coordinator side. `tag` ([A-Za-z0-9_.-], at most 64 chars, e.g. "worker0") goes into the
  // name. InvalidArgument for a bad tag or capacity; ResourceExhausted if /dev/shm is too small.
  static absl::StatusOr<std::unique_ptr<RingRegion>> Create(std::string_view tag,
                                                            const RingCapacity& capacity);
  // Worker side: opens `spec.name` read-write and maps it. NotFound if no such region;
  // FailedPrecondition for another magic or layout version; InvalidArgument (naming the field)
  // when the file's size or any header field differs from `spec` or from the layout it implies.
  static absl::StatusOr<std::unique_ptr<RingRegion>> Open(const RingSpec& spec);

  ~RingRegion();  // unmaps; the creator also unlinks if still linked
  RingRegion(const RingRegion&) = delete;
  RingRegion& operator=(const RingRegion&) = delete;

  // Creator only (FailedPrecondition otherwise): removes the name; both mappings stay valid.
  // Idempotent.
  absl::Status Unlink();

  const RingSpec& spec() const { return spec_; }
  const RingCapacity& capacity() const { return spec_.capacity; }
  const RingSlotLayout& layout() const { return layout_; }
  const std::string& name() const { return spec_.name; }
  bool is_creator() const { return is_creator_; }
  bool linked() const { return linked_; }

  uint8_t* base() const { return base_; }
  uint64_t size() const { return spec_.size; }
  // Start of slot `i`; aborts unless i < depth (a broken invariant, not bad input).
  uint8_t* slot(uint32_t i) const;

 private:
  RingRegion(RingSpec spec, RingSlotLayout layout, uint8_t* base, bool is_creator);

  RingSpec spec_;
  RingSlotLayout layout_;
  uint8_t* base_ = nullptr;
  bool is_creator_ = false;
  bool linked_ = false;
};

}  // namespace tandem
