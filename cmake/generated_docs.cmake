# Run at build time by the built binary: man pages (gzip -9n, as Debian ships them), the bash and
# zsh completion scripts and the changelog, under OUT.
#   cmake -DPORTHOLE=path/to/porthole -DSOURCE=repo -DOUT=dir -P generated_docs.cmake
file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}/man1" "${OUT}/completions")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${ARGN}: ${rc} ${err}")
  endif()
endfunction()

run("${PORTHOLE}" manpage "${OUT}/man1")
run("${PORTHOLE}" completion bash OUTPUT_FILE "${OUT}/completions/porthole")
run("${PORTHOLE}" completion zsh OUTPUT_FILE "${OUT}/completions/_porthole")
# A native package (its version has no Debian revision): lintian wants changelog.gz.
file(COPY "${SOURCE}/packaging/debian/changelog" DESTINATION "${OUT}")
file(GLOB pages "${OUT}/man1/*.1")
# -n: no name or time stamp in the header, so the same input makes the same bytes.
run(gzip -9n ${pages} "${OUT}/changelog")
