# cmake -DIN=dropq.yaml.5.in -DEXAMPLE=dropq.example.yaml -DVERSION=x.y.z -DOUT=dropq.yaml.5 -P ...
# Writes dropq.yaml(5): the page's text with the annotated example config
# inserted verbatim, escaped for roff (so the two never disagree).
cmake_policy(VERSION 3.25)
file(READ "${EXAMPLE}" example)
string(REPLACE "\\" "\\e" example "${example}")
string(REPLACE "-" "\\-" example "${example}")
string(REGEX REPLACE "\n+$" "" example "${example}")
# A line starting with . or ' would be a roff request.
string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" example "${example}")
file(READ "${IN}" page)
string(REPLACE "@PROJECT_VERSION@" "${VERSION}" page "${page}")
string(REPLACE "@EXAMPLE@" "${example}" page "${page}")
file(WRITE "${OUT}" "${page}")
