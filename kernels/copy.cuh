// copy.cuh — data movement: a strided block copy that implements Concat (one launch per
// input: the input's rows land at an offset inside the output's rows) and plain copies
// (a graph output that is a view of another value). Type-agnostic: T is an unsigned
// integer of the element's size.
#pragma once

#include "kiln_common.cuh"

namespace kiln {

// x is [outer][row_x] dense; y is [outer][row_y], and x's row goes to y's row at `offset`
// (all in elements). A plain copy is outer = 1, row_x = row_y = numel, offset = 0.
template <typename T>
__device__ __forceinline__ void copy_rows(const T *x, T *y, i64 outer, i64 row_x, i64 row_y, i64 offset) {
    const i64 total = outer * row_x;
    for (i64 i = global_thread_index(); i < total; i += grid_thread_count()) {
        const i64 o = i / row_x, r = i - o * row_x;
        y[o * row_y + offset + r] = x[i];
    }
}

} // namespace kiln
