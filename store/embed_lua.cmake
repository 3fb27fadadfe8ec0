# Writes OUT, a C++ source that holds every Lua script of store/lua/ as a
# string, so that the scripts live in .lua files and dropqd and dropqctl carry
# them without reading files at run time. Run by store/CMakeLists.txt:
#   cmake -DOUT=<file.cc> -DSOURCES=<a.lua;b.lua...> -P embed_lua.cmake
include(${CMAKE_CURRENT_LIST_DIR}/../cmake/embed_text.cmake)
set(body "// Generated from store/lua/*.lua by store/embed_lua.cmake: edit those.\n")
string(APPEND body "#include \"store/lua_sources.h\"\n\nnamespace dropq {\n\n")
string(APPEND body "const LuaSource kLuaSources[] = {\n")
set(count 0)
foreach(src IN LISTS SOURCES)
  get_filename_component(name "${src}" NAME_WE)
  dropq_raw_string(literal "${src}" dropq_lua)
  string(APPEND body "    {\"${name}\", ${literal}},\n")
  math(EXPR count "${count} + 1")
endforeach()
string(APPEND body "};\n\nconst size_t kLuaSourceCount = ${count};\n\n}  // namespace dropq\n")
dropq_write_if_changed("${OUT}" "${body}")
