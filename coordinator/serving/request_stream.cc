#include "coordinator/serving/request_stream.h"

namespace tandem {

std::vector<RequestEvent> RequestStream::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](std::deque<RequestEvent>* e) { return !e->empty(); }, &events_),
                       timeout);
  std::vector<RequestEvent> out(std::make_move_iterator(events_.begin()),
                                std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

void RequestStream::Push(RequestEvent event) {
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(event));
}

}  // namespace tandem
