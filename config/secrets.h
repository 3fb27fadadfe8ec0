// Secrets in the config: ${env:NAME}, ${file:PATH} and ${cred:NAME}, allowed
// in redis.url and in an HTTP handler's url, header values and form fields
// (common/text_template.h parses them). Each is read once, when the config
// loads, and is literal text afterwards:
//   env:NAME   dropqd's environment (e.g. systemd's EnvironmentFile=)
//   file:PATH  the file's content, one trailing newline dropped
//   cred:NAME  a systemd credential, $CREDENTIALS_DIRECTORY/NAME (LoadCredential=);
//              without $CREDENTIALS_DIRECTORY (an operator's shell),
//              /etc/credstore/NAME, then /run/credstore/NAME, as systemd looks
// A secret that is missing, empty or unreadable is an error that says where
// it looked, never what it holds. Thread: any (reads the environment).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/text_template.h"

namespace dropq {

// Reads the value of secret reference `source` ("env:TOKEN"). The Error
// (Errc::kConfig) says what is missing or unreadable.
Result<std::string> ReadSecret(const std::string& source);

// Fills in every secret part of `t` with ReadSecret(). On success the names
// of the environment variables read are appended to `env_names` (may be null).
Status ResolveSecrets(TextTemplate* t, std::vector<std::string>* env_names);

// Marks environment variables as the sources of secrets: no handler started
// from now on gets them in its environment (ExecHandler leaves them out).
// Names are only ever added. Thread: any (internally locked).
void HideEnvFromHandlers(const std::vector<std::string>& names);

// True if variable `name` was passed to HideEnvFromHandlers(). Thread: any.
bool IsHiddenEnv(std::string_view name);

// Once a config holds a secret: makes this process non-dumpable
// (prctl(PR_SET_DUMPABLE, 0)), so that a handler running as the same user
// cannot read the secrets from /proc/<pid>/environ or /proc/<pid>/mem, nor
// ptrace it. The cost: no core dumps, and /proc/<pid>/fd, strace and gdb
// need root. False (with errno) if prctl failed.
bool ProtectSecretsInMemory();

}  // namespace dropq
