#include "store/keys.h"

namespace dropq {

QueueKeys::QueueKeys(std::string_view prefix, std::string_view queue) {
  base_.reserve(prefix.size() + queue.size() + 4);
  base_.append(prefix).append(":{").append(queue).append("}:");
}

std::string InstancesKey(std::string_view prefix) { return std::string(prefix) + ":instances"; }

std::string InstanceKey(std::string_view prefix, std::string_view instance) {
  return std::string(prefix) + ":instance:" + std::string(instance);
}

}  // namespace dropq
