// The {placeholders} of an exec handler's argv. Known names:
//   {path}   absolute path of the file       {name}   file name (last component)
//   {relpath} path relative to the watched directory ("alice/2026/a.pdf")
//   {reldir}  its directory part ("alice/2026"; "" at the top)
//   {stem}   name without its last extension {ext}    last extension, without the dot
//   {dir}    the watched directory            {queue}  the queue's name
//   {job_id} the job id                       {attempt} the number of this run
// "{{" and "}}" stand for literal braces. Thread: any (pure functions).
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace dropq {

struct PlaceholderValues {
  std::string_view path, name, stem, ext, dir, queue, job_id, attempt, relpath, reldir;
};

// The value of placeholder `key` ("relpath", without braces) in `v`, or
// nullptr if no placeholder has that name.
const std::string_view* FindPlaceholder(std::string_view key, const PlaceholderValues& v);

// "{path} {name} ...": every known placeholder, for messages.
std::string_view KnownPlaceholders();

// Checks that every {...} in `arg` names a known placeholder and that braces
// pair up. The Error (Errc::kConfig) names the offending placeholder.
Status ValidatePlaceholders(std::string_view arg);

// As ValidatePlaceholders, and refuses every placeholder but {queue} and
// {dir}: a serve process's argv is expanded once, at its start.
Status ValidateServePlaceholders(std::string_view arg);

// Replaces every placeholder of a validated `arg` with its value.
std::string ExpandPlaceholders(std::string_view arg, const PlaceholderValues& v);

// Splits a file name into stem and extension: "a.tar.gz" -> ("a.tar", "gz"),
// "README" -> ("README", ""), ".bashrc" -> (".bashrc", "").
void SplitName(std::string_view name, std::string_view* stem, std::string_view* ext);

// Splits a job's relative path at its last '/': "a/b/c.pdf" -> ("a/b",
// "c.pdf"), "c.pdf" -> ("", "c.pdf").
void SplitRelPath(std::string_view relpath, std::string_view* reldir, std::string_view* name);

}  // namespace dropq
