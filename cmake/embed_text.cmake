# Helpers of the scripts that compile text files into the binaries
# (store/embed_lua.cmake, web/embed_assets.cmake), run with `cmake -P`.

# Sets `out` to the contents of file `src` as a C++ raw string literal
# R"<delim>(...)<delim>"; stops if the file holds the closing delimiter.
function(dropq_raw_string out src delim)
  file(READ "${src}" text)
  string(FIND "${text}" ")${delim}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${src} contains the raw string's delimiter")
  endif()
  set(${out} "R\"${delim}(${text})${delim}\"" PARENT_SCOPE)
endfunction()

# Writes `body` to `path` only if it differs from what is there, so that an
# unchanged source rebuilds nothing.
function(dropq_write_if_changed path body)
  if(EXISTS "${path}")
    file(READ "${path}" old)
    if(old STREQUAL body)
      return()
    endif()
  endif()
  file(WRITE "${path}" "${body}")
endfunction()
