#include <zmq.h>
#include <malloc.h>

/// Returns freed heap memory to the system (glibc), after a hostile message was dropped.
static inline void scoped_trainer_release_free_memory(void) { malloc_trim(0); }

/// Keeps freed big blocks in the heap for the next message of their size (glibc maps past 32 MB afresh).
static inline void scoped_trainer_keep_large_blocks(void) {
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}
