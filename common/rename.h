// The rename primitive every side of dropq moves files with: dropqd's
// processing area and dispositions, and dropqctl's retry. Blocking: call it
// from a worker or the threadpool, never the loop. Thread: any.
#pragma once

#include <string>

namespace dropq {

// Moves `src` to `dst` without ever replacing an existing `dst`:
// renameat2(RENAME_NOREPLACE), or link(2) + unlink(2) where the filesystem
// refuses that flag (EINVAL, as NFS does). Returns 0 or an errno value:
// EEXIST if `dst` is taken, EXDEV across filesystems, ENOENT if `src` (or
// the directory of `dst`) is missing. `force_link` skips renameat2, so tests
// can run the fallback on a filesystem that supports the flag.
int RenameNoReplace(const std::string& src, const std::string& dst, bool force_link = false);

}  // namespace dropq
