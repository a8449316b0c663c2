#include "common/shm_ring_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/str_format.h"

namespace tandem {
namespace {

absl::Status ErrnoError(int err, const std::string& what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::ResourceExhaustedError(message);
    case EINVAL:
    case ENAMETOOLONG:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

bool IsTagChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

std::string RandomHex() {
  uint64_t bits = 0;
  if (getrandom(&bits, sizeof(bits), 0) != static_cast<ssize_t>(sizeof(bits))) {
    std::random_device device;
    bits = (static_cast<uint64_t>(device()) << 32) ^ device();
  }
  return absl::StrFormat("%016x", bits);
}

// Maps `size` bytes of `fd` shared, read-write, with the page tables populated up front.
absl::StatusOr<uint8_t*> MapShared(int fd, uint64_t size, const std::string& name) {
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (base == MAP_FAILED) return ErrnoError(errno, absl::StrCat("ring ", name, ": mmap"));
  return static_cast<uint8_t*>(base);
}

template <typename T>
absl::Status ExpectField(const std::string& name, const char* field, T found, T expected) {
  if (found == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("ring ", name, ": header field ", field, " is ",
                                                 found, ", expected ", expected));
}

}  // namespace

RingRegion::RingRegion(RingSpec spec, RingSlotLayout layout, uint8_t* base, bool is_creator)
    : spec_(std::move(spec)),
      layout_(layout),
      base_(base),
      is_creator_(is_creator),
      linked_(is_creator) {}

RingRegion::~RingRegion() {
  if (base_ != nullptr) munmap(base_, spec_.size);
  if (is_creator_ && linked_) shm_unlink(spec_.name.c_str());
}

uint8_t* RingRegion::slot(uint32_t i) const {
  if (i >= spec_.capacity.depth) std::abort();
  return base_ + kRingHeaderBytes + static_cast<uint64_t>(i) * layout_.stride;
}

absl::Status RingRegion::Unlink() {
  if (!is_creator_) {
    return absl::FailedPreconditionError(
        absl::StrCat("ring ", spec_.name, ": only the creator unlinks the region"));
  }
  if (!linked_) return absl::OkStatus();
  if (shm_unlink(spec_.name.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, absl::StrCat("ring ", spec_.name, ": shm_unlink"));
  }
  linked_ = false;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RingRegion>> RingRegion::Create(std::string_view tag,
                                                               const RingCapacity& capacity) {
  if (tag.empty() || tag.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring tag must be 1 to 64 characters, got ", tag.size()));
  }
  for (char c : tag) {
    if (!IsTagChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("ring tag '", std::string(tag), "' may only hold [A-Za-z0-9_.-]"));
    }
  }
  TANDEM_ASSIGN_OR_RETURN(RingSlotLayout layout, ComputeSlotLayout(capacity));
  RingSpec spec;
  spec.size = RingRegionBytes(capacity, layout);
  spec.capacity = capacity;

  int fd = -1;
  for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
    spec.name = absl::StrCat("/tandem-", getpid(), "-", std::string(tag), "-", RandomHex());
    fd = shm_open(spec.name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
      return ErrnoError(errno, absl::StrCat("ring ", spec.name, ": shm_open"));
    }
  }
  if (fd < 0) return absl::InternalError("ring: no free shared-memory name after 8 attempts");

  // From here on the object owns the name (its destructor unlinks) once it exists; until then
  // the name is removed by hand on every error.
  auto fail = [&](absl::Status status) {
    close(fd);
    shm_unlink(spec.name.c_str());
    return status;
  };
  if (ftruncate(fd, static_cast<off_t>(spec.size)) != 0) {
    return fail(ErrnoError(errno, absl::StrCat("ring ", spec.name, ": ftruncate to ", spec.size)));
  }
  // Reserve the pages now: a full /dev/shm (e.g. a container's 64 MB default) is then a clear
  // error here instead of a SIGBUS at the first touch of a missing page.
  if (int err = posix_fallocate(fd, 0, static_cast<off_t>(spec.size));
      err != 0 && err != EOPNOTSUPP && err != EINVAL) {
    return fail(ErrnoError(err, absl::StrCat("ring ", spec.name, ": reserving ", spec.size,
                                             " bytes in /dev/shm (is it large enough?)")));
  }
  absl::StatusOr<uint8_t*> base = MapShared(fd, spec.size, spec.name);
  if (!base.ok()) return fail(base.status());
  close(fd);

  auto region = std::unique_ptr<RingRegion>(new RingRegion(spec, layout, *base, true));
  auto* header = reinterpret_cast<RingRegionHeader*>(region->base_);
  header->layout_version = kRingLayoutVersion;
  header->header_size = static_cast<uint32_t>(kRingHeaderBytes);
  header->region_size = spec.size;
  header->slot_stride = layout.stride;
  header->depth = capacity.depth;
  header->dtype = static_cast<uint32_t>(capacity.dtype);
  header->max_tokens = capacity.max_tokens;
  header->hidden_size = capacity.hidden_size;
  header->max_top_k = capacity.max_top_k;
  header->hidden_offset = layout.hidden;
  header->expert_ids_offset = layout.expert_ids;
  header->weights_offset = layout.weights;
  header->result_offset = layout.result;
  header->creator_pid = static_cast<uint64_t>(getpid());
  std::atomic_ref<uint64_t>(header->magic).store(kRingMagic, std::memory_order_release);
  return region;
}

absl::StatusOr<std::unique_ptr<RingRegion>> RingRegion::Open(const RingSpec& spec) {
  const std::string& name = spec.name;
  if (spec.magic != kRingMagic) {
    return absl::FailedPreconditionError(
        absl::StrFormat("ring %s: announced magic 0x%016x is not a Tandem ring's (0x%016x)", name,
                        spec.magic, kRingMagic));
  }
  if (spec.layout_version != kRingLayoutVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("ring ", name, ": announced layout version ", spec.layout_version,
                     ", this build reads version ", kRingLayoutVersion));
  }
  if (name.size() < 2 || name.size() > 255 || name[0] != '/' ||
      name.find('/', 1) != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring name '", name, "' is not a POSIX shared-memory name (\"/name\")"));
  }
  absl::StatusOr<RingSlotLayout> layout = ComputeSlotLayout(spec.capacity);
  if (!layout.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring ", name, ": announced ", layout.status().message()));
  }
  const uint64_t expected_size = RingRegionBytes(spec.capacity, *layout);
  if (spec.size != expected_size) {
    return absl::InvalidArgumentError(absl::StrCat("ring ", name, ": announced size ", spec.size,
                                                   " but its capacity needs ", expected_size));
  }

  const int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("ring ", name, ": shm_open"));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoError(err, absl::StrCat("ring ", name, ": fstat"));
  }
  if (static_cast<uint64_t>(st.st_size) != spec.size) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("ring ", name, ": region is ", st.st_size,
                                                   " bytes, announced ", spec.size,
                                                   " (truncated or not this ring)"));
  }
  absl::StatusOr<uint8_t*> base = MapShared(fd, spec.size, name);
  close(fd);
  if (!base.ok()) return base.status();
  auto region = std::unique_ptr<RingRegion>(new RingRegion(spec, *layout, *base, false));

  // One copy of the header, validated field by field; nothing is re-read later.
  RingRegionHeader h;
  std::memcpy(&h, region->base_, sizeof(h));
  if (h.magic != kRingMagic) {
    return absl::FailedPreconditionError(
        absl::StrFormat("ring %s: magic 0x%016x in the region is not a Tandem ring's (0x%016x)",
                        name, h.magic, kRingMagic));
  }
  if (h.layout_version != kRingLayoutVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("ring ", name, ": region has layout version ", h.layout_version,
                     ", this build reads version ", kRingLayoutVersion));
  }
  const RingCapacity& c = spec.capacity;
  TANDEM_RETURN_IF_ERROR(
      ExpectField(name, "header_size", h.header_size, static_cast<uint32_t>(kRingHeaderBytes)));
  TANDEM_RETURN_IF_ERROR(ExpectField(name, "region_size", h.region_size, spec.size));
  TANDEM_RETURN_IF_ERROR(ExpectField(name, "depth", h.depth, c.depth));
  TANDEM_RETURN_IF_ERROR(ExpectField(name, "dtype", h.dtype, static_cast<uint32_t>(c.dtype)));
  TANDEM_RETURN_IF_ERROR(ExpectField(name, "max_tokens", h.max_tokens, c.max_tokens));
  TANDEM_RETURN_IF_ERROR(ExpectField(name, "hidden_size", h.hidden_size, c.hidden_size));
  TANDEM_RETURN_IF_ERROR(ExpectField(name, "max_top_k", h.max_top_k, c.max_top_k));
  TANDEM_RETURN_IF_ERROR(ExpectField(name, "slot_stride", h.slot_stride, layout->stride));
  TANDEM_RETURN_IF_ERROR(ExpectField(name, "hidden_offset", h.hidden_offset, layout->hidden));
  TANDEM_RETURN_IF_ERROR(
      ExpectField(name, "expert_ids_offset", h.expert_ids_offset, layout->expert_ids));
  TANDEM_RETURN_IF_ERROR(ExpectField(name, "weights_offset", h.weights_offset, layout->weights));
  TANDEM_RETURN_IF_ERROR(ExpectField(name, "result_offset", h.result_offset, layout->result));
  return region;
}

}  // namespace tandem
