// TextTemplate: a config string parsed once into literal text,
// {placeholders} (common/placeholders.h) and secret references
// (${env:NAME}, ${file:PATH}, ${cred:NAME}). Parsing comes before any value
// is known, so a '{' inside a secret or a file name is never read as a
// placeholder, and each part is encoded for where it lands when expanded:
// an HTTP handler percent-encodes a file name in a URL and in a header, a
// secret only in a URL.
//
//   "Bearer ${env:TOKEN}"   -> [text "Bearer "] [secret env:TOKEN]
//   "/v1/{relpath}?a={{b}}" -> [text "/v1/"] [placeholder relpath] [text "?a={b}"]
//
// "{{" and "}}" are literal braces where placeholders are parsed; "$${x}" is
// a literal "${x}" where secrets are. The secret's value is filled in later
// (config/secrets.h resolves it); until then the part holds only its source.
// Immutable after parsing and resolving; thread: any.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/placeholders.h"
#include "common/result.h"

namespace dropq {

class TextTemplate {
 public:
  struct Part {
    enum class Kind { kText, kPlaceholder, kSecret };
    Kind kind = Kind::kText;
    std::string text;    // kText: the text; kPlaceholder: its name; kSecret: the value, once known
    std::string source;  // kSecret: the reference as written inside ${}: "env:TOKEN"

    friend bool operator==(const Part&, const Part&) = default;
  };

  // What a string may hold: placeholders, secrets, both or neither.
  struct Syntax {
    bool placeholders = false;
    bool secrets = false;
  };

  // An empty template (expands to "").
  TextTemplate() = default;
  // A template of one literal text.
  static TextTemplate Literal(std::string text);

  // Parses `s`. The Error (Errc::kConfig) says what is wrong without the
  // key: an unknown placeholder or secret source, an unclosed brace, an
  // empty secret name.
  static Result<TextTemplate> Parse(std::string_view s, Syntax syntax);

  const std::vector<Part>& parts() const { return parts_; }
  // For config/secrets.h, which fills in the secrets' values.
  std::vector<Part>& mutable_parts() { return parts_; }

  bool has_secret() const;
  bool has_placeholder() const;

  // How a value is written where it lands: verbatim, or percent-encoded.
  using Encoder = std::string (*)(std::string_view value);
  // Text verbatim, each placeholder's value through `placeholder`, each
  // secret's value through `secret`.
  std::string Expand(const PlaceholderValues& v, Encoder placeholder, Encoder secret) const;
  // What logs and --check-config show: secrets as "***", placeholders as
  // written, text verbatim.
  std::string Redacted() const;

  friend bool operator==(const TextTemplate&, const TextTemplate&) = default;

 private:
  // Text verbatim, each placeholder's name through `placeholder`, each
  // secret's value through `secret`.
  template <typename OnPlaceholder, typename OnSecret>
  std::string Render(OnPlaceholder placeholder, OnSecret secret) const;

  std::vector<Part> parts_;
};

// `value` itself (an Encoder).
std::string Verbatim(std::string_view value);
// `value` with every byte but A-Z a-z 0-9 - . _ ~ / written as %XX (an
// Encoder): what lands in a URL or a header cannot end it, start a query
// or a new header line. '/' is kept so that {relpath} stays a path.
std::string PercentEncode(std::string_view value);
// Like PercentEncode() but '/' is encoded too: for a URL's user or password.
std::string PercentEncodeAll(std::string_view value);

}  // namespace dropq
