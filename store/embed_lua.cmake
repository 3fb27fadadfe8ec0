# Writes OUT, a C++ source that holds every Lua script of store/lua/ as a
# string, so that the scripts live in .lua files and dropqd and dropqctl carry
# them without reading files at run time. Run by store/CMakeLists.txt:
#   cmake -DOUT=<file.cc> -DSOURCES=<a.lua;b.lua...> -P embed_lua.cmake
set(body "// Generated from store/lua/*.lua by store/embed_lua.cmake: edit those.\n")
string(APPEND body "#include \"store/lua_sources.h\"\n\nnamespace dropq {\n\n")
string(APPEND body "const LuaSource kLuaSources[] = {\n")
set(count 0)
foreach(src IN LISTS SOURCES)
  get_filename_component(name "${src}" NAME_WE)
  file(READ "${src}" text)
  string(FIND "${text}" ")dropq_lua\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${src} contains the raw string's delimiter")
  endif()
  string(APPEND body "    {\"${name}\", R\"dropq_lua(${text})dropq_lua\"},\n")
  math(EXPR count "${count} + 1")
endforeach()
string(APPEND body "};\n\nconst size_t kLuaSourceCount = ${count};\n\n}  // namespace dropq\n")
# Rewritten only when it changed, so that an unchanged script rebuilds nothing.
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL body)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${body}")
