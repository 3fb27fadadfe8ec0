#include "common/escape.h"

#include <cstdint>

namespace dropq {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence starting at s[i], or 0 if the bytes there
// do not form one (overlong forms, surrogates and values above U+10FFFF are invalid).
size_t Utf8SeqLen(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  size_t len;
  uint32_t min;
  uint32_t cp;
  if ((b0 & 0xe0) == 0xc0) {
    len = 2, min = 0x80, cp = b0 & 0x1f;
  } else if ((b0 & 0xf0) == 0xe0) {
    len = 3, min = 0x800, cp = b0 & 0x0f;
  } else if ((b0 & 0xf8) == 0xf0) {
    len = 4, min = 0x10000, cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

void AppendHexEscape(std::string* out, uint8_t b) {
  out->append("\\x");
  out->push_back(kHex[b >> 4]);
  out->push_back(kHex[b & 0xf]);
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

namespace {

// EscapeName() and EscapeText() differ only in what they leave alone.
std::string Escape(std::string_view name, bool text) {
  std::string out;
  out.reserve(name.size() + 8);
  size_t i = 0;
  while (i < name.size()) {
    const auto b = static_cast<uint8_t>(name[i]);
    if (text && (b == ' ' || b == '\t' || b == '\\')) {
      out.push_back(static_cast<char>(b));
      ++i;
    } else if (b == '\\') {
      out.append("\\\\");
      ++i;
    } else if (b <= 0x20 || b == 0x7f) {
      AppendHexEscape(&out, b);
      ++i;
    } else if (b < 0x80) {
      out.push_back(static_cast<char>(b));
      ++i;
    } else if (size_t len = Utf8SeqLen(name, i); len > 0) {
      out.append(name.substr(i, len));
      i += len;
    } else {
      AppendHexEscape(&out, b);
      ++i;
    }
  }
  return out;
}

}  // namespace

std::string EscapeName(std::string_view name) { return Escape(name, false); }

std::string EscapeText(std::string_view line) { return Escape(line, true); }

bool UnescapeName(std::string_view escaped, std::string* out) {
  out->clear();
  for (size_t i = 0; i < escaped.size(); ++i) {
    if (escaped[i] != '\\') {
      out->push_back(escaped[i]);
      continue;
    }
    if (i + 1 < escaped.size() && escaped[i + 1] == '\\') {
      out->push_back('\\');
      i += 1;
    } else if (i + 3 < escaped.size() && escaped[i + 1] == 'x' && HexVal(escaped[i + 2]) >= 0 &&
               HexVal(escaped[i + 3]) >= 0) {
      out->push_back(static_cast<char>(HexVal(escaped[i + 2]) * 16 + HexVal(escaped[i + 3])));
      i += 3;
    } else {
      return false;
    }
  }
  return true;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SeqLen(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string ToValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SeqLen(s, i);
    if (len == 0) {
      out.append("\xef\xbf\xbd");
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

std::string JsonQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  const auto hex4 = [&](unsigned v) {
    out.append("\\u");
    for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 0xf]);
  };
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SeqLen(s, i);
    if (len == 0) {
      hex4(0xdc00u + static_cast<uint8_t>(s[i]));
      ++i;
      continue;
    }
    if (len > 1) {
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    const char c = s[i++];
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\r':
        out.append("\\r");
        break;
      default:
        if (static_cast<uint8_t>(c) < 0x20 || c == 0x7f) {
          hex4(static_cast<uint8_t>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string HexBytes(std::string_view s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (char c : s) {
    const auto b = static_cast<uint8_t>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

}  // namespace dropq
