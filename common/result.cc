#include "common/result.h"

#include <cstring>

namespace dropq {

Error IoError(std::string what, int err) {
  what += ": ";
  what += std::strerror(err);
  return Error{Errc::kIo, std::move(what)};
}

}  // namespace dropq
