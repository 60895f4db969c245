# Writes a C++ source that holds IN (a text file) as porthole::observe::inspector_page.
# Usage: cmake -DIN=web/inspector.html -DOUT=inspector_page.cpp -P embed_page.cmake
file(READ "${IN}" content)
string(FIND "${content}" ")porthole_page\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )porthole_page\"")
endif()
file(WRITE "${OUT}.tmp"
  "#include \"observe/inspector_page.hpp\"\n"
  "namespace porthole::observe {\n"
  "extern const std::string_view inspector_page = R\"porthole_page(${content})porthole_page\";\n"
  "}\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
