// TempDir makes a fresh directory under $TMPDIR (mkdtemp) and removes it,
// with everything inside, when destroyed. Thread: owner.
#pragma once

#include <string>

namespace dropq::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + rel
  std::string Sub(const std::string& rel) const { return path_ + "/" + rel; }
  // Creates directory Sub(rel) and returns its path.
  std::string Mkdir(const std::string& rel) const;

 private:
  std::string path_;
};

// Writes `content` to `path` (created or truncated). Aborts the test on error.
void WriteFile(const std::string& path, const std::string& content);
// Returns the content of `path`, or "" if it cannot be read.
std::string ReadFile(const std::string& path);
bool Exists(const std::string& path);

}  // namespace dropq::test
