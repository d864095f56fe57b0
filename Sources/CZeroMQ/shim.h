#include <zmq.h>
#include <malloc.h>

/// Returns freed heap memory to the system (glibc), after a hostile message was dropped.
static inline void scoped_trainer_release_free_memory(void) { malloc_trim(0); }
