// How dropq writes a file name where it must stay one unambiguous token: the
// manifest, log lines. A backslash becomes `\\`; a space, a control byte
// (0x00-0x1f, 0x7f) or a byte that is not part of valid UTF-8 becomes `\xNN`
// (lower-case hex); everything else, valid multi-byte UTF-8 included, is kept.
#pragma once

#include <string>
#include <string_view>

namespace dropq {

// Returns `name` escaped as described above. Never fails.
std::string EscapeName(std::string_view name);

// For one line of text shown to a person (a handler's stderr): like
// EscapeName() but spaces, tabs and backslashes stay as they are, so the text
// stays readable while no control byte (a terminal escape) gets through.
std::string EscapeText(std::string_view line);

// Reverses EscapeName(). Returns false on a malformed escape.
bool UnescapeName(std::string_view escaped, std::string* out);

// True if `s` is entirely valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Returns `s` with every invalid UTF-8 sequence replaced by U+FFFD, for JSON.
std::string ToValidUtf8(std::string_view s);

// `s` as a JSON string, quotes included. Valid UTF-8 is kept; '"', '\\' and
// control bytes are escaped; a byte that is not part of valid UTF-8 becomes
// a lone surrogate \udc80..\udcff (Python's surrogateescape:
// os.fsencode() gives the bytes back), so no name is altered or refused.
std::string JsonQuote(std::string_view s);

// Lower-case hex of every byte of `s`.
std::string HexBytes(std::string_view s);

}  // namespace dropq
