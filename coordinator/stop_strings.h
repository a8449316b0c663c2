// Stop strings over streamed text: text is released only once no stop string can still start in
// it, so a client never sees the beginning of a stop string that then completes. When one
// completes, the text before it is released and the rest is dropped. One per request; not
// thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);

  // Appends `delta` to the pending text; returns what may be shown now. After a stop string
  // completes, stopped() is true and later calls return "".
  std::string Add(std::string_view delta);
  // The text still held back (generation ended without a stop): all of it may be shown.
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace tandem
