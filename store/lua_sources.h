// The Lua sources of store/lua/, embedded at build time (store/embed_lua.cmake
// writes lua_sources.cc in the build tree). store/scripts.cc builds the
// scripts from them; nothing else should need this. Immutable; thread: any.
#pragma once

#include <cstddef>
#include <string_view>

namespace dropq {

struct LuaSource {
  std::string_view name;  // the file's name without ".lua": "claim", "lib"
  std::string_view text;  // the whole file
};

extern const LuaSource kLuaSources[];
extern const size_t kLuaSourceCount;

}  // namespace dropq
