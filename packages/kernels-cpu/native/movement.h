// Data-movement kernels (movement.cc). Element sizes 1, 2, 4 or 8 bytes; all shapes and strides in elements.
// Functions that read an index return -1 when done, or the first position whose index is out of range (nothing
// written then: the caller reports it); -2 means "not handled here" (the caller falls back).
#pragma once
#include <cstdint>

namespace ot {
// dst (contiguous, row-major over `shape`) = src read at `strides` (0 = broadcast). false: unsupported elemSize/rank.
bool stridedCopy(const void* src, void* dst, int elemSize, const long* shape, int nd, const long* strides);
// For o < outer: dst[o * rowBytes + offsetBytes ..] = src[o * chunkBytes ..] (chunkBytes bytes): one input of cat.
void catCopy(const void* src, void* dst, long outer, long chunkBytes, long rowBytes, long offsetBytes);
// src as [outer, size, inner] -> dst [outer, n, inner] with dst[o, i] = src[o, idx[i]].
long indexSelect(const void* src, const int32_t* idx, void* dst, int elemSize, long outer, long size, long n,
                 long inner);
// dst (the index's shape) [p] = src[base(p) + idx[p] * dimStride], base(p) = sum of p's coordinates times
// baseStrides (the source's strides with the gathered dim's set to 0); indices must lie in [0, size).
long gather(const void* src, const int32_t* idx, void* dst, int elemSize, const long* ishape, int nd,
            const long* baseStrides, long dimStride, long size);
// out (holding x) [index position with idx along dim] += src[the same position] for every position of the index
// (ishape, nd dims); float32, or float64 when f64. Strides in elements of x and src; indices in [0, size).
long scatterAdd(void* out, const int32_t* idx, const void* src, bool f64, const long* ishape, int nd, int dim,
                const long* xStrides, const long* srcStrides, long size);
// Number of nonzero bytes of mask[0, n).
long maskCount(const uint8_t* mask, long n);
// dst[0, maskCount) = the elements of x[0, n) whose mask byte is set, in order. false: unsupported elemSize.
bool maskedSelect(const void* x, const uint8_t* mask, void* dst, int elemSize, long n);
// dst[i] = mask[i] ? the next element of src : x[i] for i < n. -1 when done; the mask's count when it exceeds
// srcLen (nothing written); -2 for an unsupported elemSize.
long maskedScatter(const void* x, const uint8_t* mask, const void* src, long srcLen, void* dst, int elemSize, long n);
}  // namespace ot
