// glibc's malloc returns blocks above its mmap threshold (at most 32 MB) to the kernel on
// free; each training step then re-faults and re-zeroes its large activations.
#include "ckernels.h"
// stdlib.h brings features.h, which defines __GLIBC__: testing it before any libc header
// compiled the calls below out.
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void gvae_keep_large_blocks(void) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}
