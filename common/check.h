// DROPQ_CHECK aborts on a broken invariant: Redis holds the truth and systemd
// restarts us, so crashing loudly beats running on in an unknown state.
// Bad input is never a CHECK: it is a logged, counted skip.
#pragma once

#include <cstdio>
#include <cstdlib>

#define DROPQ_CHECK(cond)                                                                    \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "<2>check.failed at=%s:%d cond=%s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

#ifdef NDEBUG
#define DROPQ_DCHECK(cond) \
  do {                     \
  } while (0)
#else
#define DROPQ_DCHECK(cond) DROPQ_CHECK(cond)
#endif
