#include "store/job_fields.h"

namespace dropq::jobfield {
namespace {

// "<n>" with n >= 1 and no leading zero.
bool RunNumber(std::string_view s) {
  if (s.empty() || s.size() > 10 || s[0] == '0') return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

bool IsKnown(std::string_view field) {
  for (std::string_view f : kAll) {
    if (f == field) return true;
  }
  for (std::string_view prefix : {kAttemptPrefix, kStderrPrefix, kResponsePrefix}) {
    if (field.substr(0, prefix.size()) == prefix) return RunNumber(field.substr(prefix.size()));
  }
  return false;
}

}  // namespace dropq::jobfield
