#include "core/heap_trim.hpp"

#include <malloc.h>

namespace porthole::core {

bool heap_trim::tick() {
    if (!policy_.due(mallinfo2().fordblks)) return false;
    malloc_trim(0);
    policy_.trimmed(mallinfo2().fordblks);
    return true;
}

}  // namespace porthole::core
