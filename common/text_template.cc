#include "common/text_template.h"

#include <algorithm>

namespace dropq {
namespace {

void AppendText(std::vector<TextTemplate::Part>* parts, std::string_view text) {
  if (text.empty()) return;
  if (!parts->empty() && parts->back().kind == TextTemplate::Part::Kind::kText) {
    parts->back().text.append(text);
    return;
  }
  parts->push_back({TextTemplate::Part::Kind::kText, std::string(text), ""});
}

Error Bad(const std::string& what) { return Error{Errc::kConfig, what}; }

}  // namespace

TextTemplate TextTemplate::Literal(std::string text) {
  TextTemplate t;
  AppendText(&t.parts_, text);
  return t;
}

Result<TextTemplate> TextTemplate::Parse(std::string_view s, Syntax syntax) {
  TextTemplate t;
  std::vector<Part>& parts = t.parts_;
  const std::string quoted = "\"" + std::string(s) + "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (syntax.secrets && c == '$') {
      if (s.substr(i, 3) == "$${") {  // a literal "${", up to its '}'
        const size_t close = s.find('}', i + 3);
        const size_t end = close == std::string_view::npos ? s.size() : close + 1;
        AppendText(&parts, s.substr(i + 1, end - i - 1));
        i = end - 1;
        continue;
      }
      if (s.substr(i, 2) == "${") {
        const size_t close = s.find('}', i + 2);
        if (close == std::string_view::npos) return Bad("unclosed \"${\" in " + quoted);
        const std::string_view ref = s.substr(i + 2, close - i - 2);
        const size_t colon = ref.find(':');
        const std::string_view kind = ref.substr(0, colon);
        if (colon == std::string_view::npos ||
            (kind != "env" && kind != "file" && kind != "cred")) {
          return Bad("unknown secret \"${" + std::string(ref) +
                     "}\" (use ${env:NAME}, ${file:PATH} or ${cred:NAME}; $${ for a literal ${)");
        }
        if (colon + 1 == ref.size()) return Bad("empty name in \"${" + std::string(ref) + "}\"");
        parts.push_back({Part::Kind::kSecret, "", std::string(ref)});
        i = close;
        continue;
      }
    }
    if (syntax.placeholders && (c == '{' || c == '}')) {
      if (i + 1 < s.size() && s[i + 1] == c) {  // "{{" or "}}"
        AppendText(&parts, std::string_view(&c, 1));
        ++i;
        continue;
      }
      if (c == '}') return Bad("unmatched '}' in " + quoted + " (write }})");
      const size_t close = s.find('}', i);
      if (close == std::string_view::npos) return Bad("unclosed '{' in " + quoted);
      const std::string_view key = s.substr(i + 1, close - i - 1);
      static const PlaceholderValues kNone{};
      if (FindPlaceholder(key, kNone) == nullptr) {
        return Bad("unknown placeholder {" + std::string(key) +
                   "} (known: " + std::string(KnownPlaceholders()) + ")");
      }
      parts.push_back({Part::Kind::kPlaceholder, std::string(key), ""});
      i = close;
      continue;
    }
    AppendText(&parts, std::string_view(&c, 1));
  }
  return t;
}

bool TextTemplate::has_secret() const {
  return std::any_of(parts_.begin(), parts_.end(),
                     [](const Part& p) { return p.kind == Part::Kind::kSecret; });
}

bool TextTemplate::has_placeholder() const {
  return std::any_of(parts_.begin(), parts_.end(),
                     [](const Part& p) { return p.kind == Part::Kind::kPlaceholder; });
}

template <typename OnPlaceholder, typename OnSecret>
std::string TextTemplate::Render(OnPlaceholder placeholder, OnSecret secret) const {
  std::string out;
  for (const Part& p : parts_) {
    switch (p.kind) {
      case Part::Kind::kText:
        out += p.text;
        break;
      case Part::Kind::kPlaceholder:
        out += placeholder(p.text);
        break;
      case Part::Kind::kSecret:
        out += secret(p.text);
        break;
    }
  }
  return out;
}

std::string TextTemplate::Expand(const PlaceholderValues& v, Encoder placeholder,
                                 Encoder secret) const {
  return Render(
      [&](const std::string& name) {
        const std::string_view* val = FindPlaceholder(name, v);
        return val == nullptr ? std::string() : placeholder(*val);
      },
      [&](const std::string& value) { return secret(value); });
}

std::string TextTemplate::Redacted() const {
  return Render([](const std::string& name) { return "{" + name + "}"; },
                [](const std::string&) { return std::string("***"); });
}

std::string Verbatim(std::string_view value) { return std::string(value); }

namespace {

std::string Encode(std::string_view value, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (const char ch : value) {
    const auto u = static_cast<unsigned char>(ch);
    const bool keep = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
                      u == '-' || u == '.' || u == '_' || u == '~' || (keep_slash && u == '/');
    if (keep) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

}  // namespace

std::string PercentEncode(std::string_view value) { return Encode(value, /*keep_slash=*/true); }

std::string PercentEncodeAll(std::string_view value) { return Encode(value, /*keep_slash=*/false); }

}  // namespace dropq
