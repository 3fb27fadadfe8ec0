#include "workers/serve_protocol.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/escape.h"

namespace dropq {
namespace {

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// nlohmann-json refuses a lone surrogate escape. Before parsing, each lone
// \udc80..\udcff becomes "\u0000\u00XX" and each \u0000 "\u0000\u0000":
// a decoded string then holds U+0000 only as such a pair (JSON forbids a raw
// NUL in a string), and Unmask() turns the pairs back into bytes. A \udcXX
// right after a high surrogate escape is half of a real character: kept.
std::string MaskSurrogates(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  bool after_high = false;  // the last escape was \ud800..\udbff
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c != '\\' || i + 1 >= line.size()) {
      out += c;
      after_high = false;
      continue;
    }
    const char e = line[i + 1];
    if (e != 'u' || i + 5 >= line.size() || !IsHex(line[i + 2]) || !IsHex(line[i + 3]) ||
        !IsHex(line[i + 4]) || !IsHex(line[i + 5])) {
      out.append(line.substr(i, 2));  // another escape, "\\" included: copied as it is
      ++i;
      after_high = false;
      continue;
    }
    const int unit = (HexValue(line[i + 2]) << 12) | (HexValue(line[i + 3]) << 8) |
                     (HexValue(line[i + 4]) << 4) | HexValue(line[i + 5]);
    const std::string_view escape = line.substr(i, 6);
    if (unit == 0) {
      out += "\\u0000\\u0000";
    } else if (unit >= 0xdc80 && unit <= 0xdcff && !after_high) {
      out += "\\u0000\\u00";
      out.append(escape.substr(4, 2));
    } else {
      out.append(escape);
    }
    after_high = unit >= 0xd800 && unit <= 0xdbff;
    i += 5;
  }
  return out;
}

// A string decoded from a masked line, with its NUL pairs made bytes again.
std::string Unmask(const std::string& s) {
  if (s.find('\0') == std::string::npos) return s;
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\0' || i + 1 >= s.size()) {
      out += s[i];
      continue;
    }
    const auto next = static_cast<unsigned char>(s[i + 1]);
    if (next == 0) {
      out += '\0';
      i += 1;
    } else if ((next == 0xc2 || next == 0xc3) && i + 2 < s.size()) {
      // U+0080..U+00FF in UTF-8: the byte 0x80..0xff.
      const auto low = static_cast<unsigned char>(s[i + 2]);
      out += static_cast<char>(((next & 0x03) << 6) | (low & 0x3f));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// `v` as JSON text, its strings (keys too) unmasked and quoted by JsonQuote.
void Serialize(const nlohmann::json& v, std::string* out) {
  switch (v.type()) {
    case nlohmann::json::value_t::string:
      *out += JsonQuote(Unmask(v.get_ref<const std::string&>()));
      return;
    case nlohmann::json::value_t::array: {
      *out += '[';
      bool first = true;
      for (const auto& e : v) {
        if (!first) *out += ',';
        first = false;
        Serialize(e, out);
      }
      *out += ']';
      return;
    }
    case nlohmann::json::value_t::object: {
      *out += '{';
      bool first = true;
      for (const auto& [key, e] : v.items()) {
        if (!first) *out += ',';
        first = false;
        *out += JsonQuote(Unmask(key));
        *out += ':';
        Serialize(e, out);
      }
      *out += '}';
      return;
    }
    default:
      *out += v.dump();  // null, true, false, numbers
      return;
  }
}

// How deeply `text`'s arrays and objects nest (brackets inside strings aside).
int NestingDepth(std::string_view text) {
  int depth = 0, most = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      most = std::max(most, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return most;
}

}  // namespace

std::string EncodeServeJob(const ServeJob& job) {
  std::string out;
  out.reserve(128 + job.path.size() + 2 * job.relpath.size());
  out += "{\"id\":";
  out += JsonQuote(job.id);
  out += ",\"queue\":";
  out += JsonQuote(job.queue);
  out += ",\"path\":";
  out += JsonQuote(job.path);
  out += ",\"name\":";
  out += JsonQuote(job.name);
  out += ",\"relpath\":";
  out += JsonQuote(job.relpath);
  out += ",\"attempt\":";
  out += std::to_string(job.attempt);
  out += ",\"size\":";
  out += std::to_string(job.size);
  out += "}\n";
  return out;
}

Result<ServeAnswer> DecodeServeAnswer(std::string_view line) {
  const auto bad = [](std::string why) { return Error{Errc::kInvalid, std::move(why)}; };
  // Serialize() recurses: a result nested a million deep must not reach it.
  if (NestingDepth(line) > kServeMaxDepth) {
    return bad("nested deeper than " + std::to_string(kServeMaxDepth) + " levels");
  }
  nlohmann::json v =
      nlohmann::json::parse(MaskSurrogates(line), nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return bad("not JSON");
  if (!v.is_object()) return bad("not a JSON object");
  ServeAnswer a;
  if (v.contains("ready") && !v.contains("id")) {
    if (!v["ready"].is_boolean() || !v["ready"].get<bool>()) return bad("\"ready\" is not true");
    a.kind = ServeAnswer::Kind::kReady;
    return a;
  }
  const auto id = v.find("id");
  if (id == v.end()) return bad("neither {\"ready\": true} nor an answer with an \"id\"");
  if (!id->is_string()) return bad("\"id\" is not a string");
  a.id = Unmask(id->get_ref<const std::string&>());
  const auto ok = v.find("ok");
  if (ok == v.end() || !ok->is_boolean()) return bad("\"ok\" is missing or not true/false");
  a.ok = ok->get<bool>();
  if (a.ok) {
    const auto result = v.find("result");
    if (result != v.end() && !result->is_null()) {
      if (!result->is_object()) return bad("\"result\" is not an object");
      Serialize(*result, &a.result);
    }
    return a;
  }
  if (const auto error = v.find("error"); error != v.end() && !error->is_null()) {
    if (!error->is_string()) return bad("\"error\" is not a string");
    a.error = Unmask(error->get_ref<const std::string&>());
  }
  if (const auto p = v.find("permanent"); p != v.end() && !p->is_null()) {
    if (!p->is_boolean()) return bad("\"permanent\" is not true/false");
    a.permanent = p->get<bool>();
  }
  if (const auto r = v.find("retry_after"); r != v.end() && !r->is_null()) {
    if (!r->is_number()) return bad("\"retry_after\" is not a number of seconds");
    const double s = r->get<double>();
    if (!std::isfinite(s) || s < 0 || s > 31536000) {
      return bad("\"retry_after\" is not 0..31536000 seconds");
    }
    a.retry_after_ms = static_cast<int64_t>(std::llround(s * 1000));
  }
  return a;
}

}  // namespace dropq
