# Writes a C++ source that holds IN (a text file) as the std::string_view NAME in NAMESPACE,
# declared in HEADER. The inspector's page is the default.
# Usage: cmake -DIN=web/admin.js -DOUT=dashboard_js.cpp -DNAME=dashboard_js
#              -DNAMESPACE=porthole::admin -DHEADER=admin/dashboard_page.hpp -P embed_page.cmake
if(NOT DEFINED NAME)
  set(NAME inspector_page)
  set(NAMESPACE porthole::observe)
  set(HEADER observe/inspector_page.hpp)
endif()
file(READ "${IN}" content)
string(FIND "${content}" ")porthole_page\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )porthole_page\"")
endif()
file(WRITE "${OUT}.tmp"
  "#include \"${HEADER}\"\n"
  "namespace ${NAMESPACE} {\n"
  "extern const std::string_view ${NAME} = R\"porthole_page(${content})porthole_page\";\n"
  "}\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
