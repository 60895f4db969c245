#pragma once
// toml++, included here only. Its internal assertions are off in every build, as NDEBUG turns
// them off in Release: toml++ 3.3 asserts on some malformed input it then reports as an error
// (a table header such as "[= x]"), which would stop the sanitizer and fuzzing builds on input
// the loaders refuse cleanly. The config fuzzer still checks that every input is either loaded
// or refused with FILE:LINE.
#ifndef TOML_ASSERT
#define TOML_ASSERT(expr) static_assert(true)
#endif
#include <toml++/toml.h>
