// Globs on the relative path of a file in a watched tree. A queue's
// include/exclude globs without '/' match the file's own name, as fnmatch(3)
// does without FNM_PATHNAME (config.h NameSelected()). A glob that holds '/'
// matches the whole relative path ("alice/2026/scan 01.pdf"), anchored at the
// watched directory, one component at a time:
//
//   "*"   within a component, any run of bytes ('*' never crosses a '/')
//   "**"  as a whole component: any number of directories, none included
//
//   "*/in/*.pdf"    matches "alice/in/a.pdf", not "in/a.pdf" or "a/b/in/a.pdf"
//   "**/*.pdf"      matches "a.pdf", "x/a.pdf" and "x/y/z/a.pdf"
//   "alice/**"      matches everything below alice/ (not a file named alice)
//   "**/tmp/**"     matches any file below a directory named tmp, at any depth
//
// glibc's fnmatch has no "**", hence this matcher: each component is handed
// to fnmatch(3), so brackets, classes and backslash escapes work as there.
// Thread: any (pure functions).
#pragma once

#include <string_view>

namespace dropq {

// True if `pattern` (a glob holding '/'; one leading '/' is ignored) matches
// the relative path `relpath` ("a/b/c", no leading '/').
bool PathGlobMatch(std::string_view pattern, std::string_view relpath);

}  // namespace dropq
