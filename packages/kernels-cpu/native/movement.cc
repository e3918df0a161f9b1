// Data movement for every dtype: elements move as 1/2/4/8-byte words, so copies are bit-exact for floats, halves,
// ints and bools alike. Strided copies (permute, expand, narrow), cat, indexSelect, gather, maskedSelect and
// maskedScatter (per-chunk counts, then each chunk copies from its prefix offset) run on the pool;
// scatterAdd sums in the element type, in the reference's order (see scatterAdd below).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "movement.h"
#include "pool.h"
#include "strided.h"

namespace ot {
namespace {

constexpr long kGrain = 32768;  // elements per pool chunk: below this, waking a thread costs more than it saves
constexpr long kTile = 32;      // edge of the square tiles of a transposing copy

// Rows [r0, r1) x columns [c0, c1) of dst [R, C] (row stride C) from src where src(r, c) = src[r + c * cs].
template <class T>
void transposeTile(const T* src, long cs, T* dst, long C, long r0, long r1, long c0, long c1) {
  for (long r = r0; r < r1; r++) {
    T* d = dst + r * C;
    const T* s = src + r;
    for (long c = c0; c < c1; c++) d[c] = s[c * cs];
  }
}

template <class T>
void copyAs(const T* src, T* dst, const long* shape, int nd, const long* st) {
  // Last two dims swapped relative to the source (x.transpose(-1, -2)): square tiles, so that both the reads
  // (down source columns) and the writes stay within a few cache lines.
  if (nd >= 2 && st[nd - 1] != 1 && st[nd - 2] == 1 && shape[nd - 1] > 1) {
    const long R = shape[nd - 2], C = shape[nd - 1], cs = st[nd - 1];
    long outer = 1;
    for (int d = 0; d < nd - 2; d++) outer *= shape[d];
    const long tr = (R + kTile - 1) / kTile, tc = (C + kTile - 1) / kTile;
    parallelFor(outer * tr, [&](long t, int) {
      const long o = t / tr, r0 = (t % tr) * kTile;
      long base = 0, rem = o;
      for (int d = nd - 3; d >= 0; d--) {
        base += (rem % shape[d]) * st[d];
        rem /= shape[d];
      }
      for (long j = 0; j < tc; j++)
        transposeTile(src + base, cs, dst + o * R * C, C, r0, std::min(R, r0 + kTile), j * kTile,
                      std::min(C, (j + 1) * kTile));
    });
    return;
  }
  const long* sts[1] = {st};
  stridedRuns<1>(shape, nd, sts, kGrain, [&](long o, const long* off, long len) {
    const long s = st[nd - 1];
    const T* from = src + off[0];
    if (s == 1)
      std::memcpy(dst + o, from, sizeof(T) * len);
    else if (s == 0)
      std::fill(dst + o, dst + o + len, *from);
    else
      for (long j = 0; j < len; j++) dst[o + j] = from[j * s];
  });
}

// Calls f with a null pointer of the unsigned word type of `elemSize` bytes (false for other sizes).
template <class F>
bool byWord(int elemSize, F&& f) {
  switch (elemSize) {
    case 1: f((uint8_t*)nullptr); return true;
    case 2: f((uint16_t*)nullptr); return true;
    case 4: f((uint32_t*)nullptr); return true;
    case 8: f((uint64_t*)nullptr); return true;
    default: return false;
  }
}

// First position p in [0, n) with idx[p] outside [0, size), or -1 (checked on the pool before anything is written).
long firstBadIndex(const int32_t* idx, long n, long size) {
  std::atomic<long> bad{n};
  parallelChunks(n, 1L << 16, [&](long a, long b) {
    for (long p = a; p < b; p++)
      if (idx[p] < 0 || idx[p] >= size) {
        long cur = bad.load();
        while (p < cur && !bad.compare_exchange_weak(cur, p)) {
        }
        return;
      }
  });
  return bad.load() == n ? -1 : bad.load();
}

// Element offsets (at strides st) of every position of dims [d0, d1) of shape, row-major.
std::vector<long> offsetsOf(const long* shape, const long* st, int d0, int d1) {
  long count = 1;
  for (int d = d0; d < d1; d++) count *= shape[d];
  std::vector<long> out(count);
  for (long p = 0; p < count; p++) {
    long rem = p, off = 0;
    for (int d = d1 - 1; d >= d0; d--) {
      off += (rem % shape[d]) * st[d];
      rem /= shape[d];
    }
    out[p] = off;
  }
  return out;
}

template <class T>
void scatterAddAs(T* out, const int32_t* idx, const T* src, const long* ishape, int nd, int dim, const long* xst,
                  const long* sst) {
  const std::vector<long> xo = offsetsOf(ishape, xst, 0, dim), so = offsetsOf(ishape, sst, 0, dim);
  const std::vector<long> xi = offsetsOf(ishape, xst, dim + 1, nd), si = offsetsOf(ishape, sst, dim + 1, nd);
  const long n = ishape[dim], inner = (long)xi.size(), xd = xst[dim], sd = sst[dim];
  // Positions that differ outside `dim` never reach the same output element, so each (outer slice, column tile)
  // is one task; inside it the index runs along `dim` in order: every output element receives its
  // contributions in the order of the index's positions, as the reference adds them.
  // Column tiles of at least 64 elements (each row visit is then a contiguous run), about 4 per thread.
  const long colChunk = std::min(inner, std::max(64L, inner / (4L * numThreads())));
  bool unit = true;  // the dims after `dim` are contiguous in x and src alike: offsets are the column itself
  for (long j = 0; j < inner && unit; j++) unit = xi[j] == j && si[j] == j;
  parallelColumnTiles((long)xo.size(), inner, colChunk, [&](long o, long c0, long c1) {
    for (long i = 0; i < n; i++) {
      const int32_t* ip = idx + (o * n + i) * inner;
      T* x = out + xo[o];
      const T* s = src + so[o] + i * sd;
      if (unit)
        for (long j = c0; j < c1; j++) x[j + (long)ip[j] * xd] += s[j];
      else
        for (long j = c0; j < c1; j++) x[xi[j] + (long)ip[j] * xd] += s[si[j]];
    }
  });
}

// Per-chunk counts of set mask bytes and their exclusive prefix sums (chunks of `step` elements); returns the total.
long maskPrefix(const uint8_t* mask, long n, long step, std::vector<long>& start) {
  const long parts = (n + step - 1) / step;
  start.assign(parts + 1, 0);
  parallelFor(parts, [&](long c, int) {
    long count = 0;
    for (long i = c * step, e = std::min(n, i + step); i < e; i++) count += mask[i] != 0;
    start[c + 1] = count;
  });
  for (long c = 0; c < parts; c++) start[c + 1] += start[c];
  return start[parts];
}

// Chunk size for the masked copies: about 4 chunks per thread, at least kGrain elements.
long maskStep(long n) { return std::max(kGrain, (n + 4L * numThreads() - 1) / (4L * numThreads())); }

template <class T>
void maskedSelectAs(const T* x, const uint8_t* mask, T* dst, long n, long step, const std::vector<long>& start) {
  parallelFor((long)start.size() - 1, [&](long c, int) {
    T* d = dst + start[c];
    for (long i = c * step, e = std::min(n, i + step); i < e; i++)
      if (mask[i]) *d++ = x[i];
  });
}

template <class T>
void maskedScatterAs(const T* x, const uint8_t* mask, const T* src, T* dst, long n, long step,
                     const std::vector<long>& start) {
  parallelFor((long)start.size() - 1, [&](long c, int) {
    const T* s = src + start[c];
    for (long i = c * step, e = std::min(n, i + step); i < e; i++) dst[i] = mask[i] ? *s++ : x[i];
  });
}

}  // namespace

bool stridedCopy(const void* src, void* dst, int elemSize, const long* shape, int nd, const long* strides) {
  if (nd > kMaxDims) return false;
  return byWord(elemSize, [&](auto* w) {
    using T = std::remove_pointer_t<decltype(w)>;
    copyAs((const T*)src, (T*)dst, shape, nd, strides);
  });
}

void catCopy(const void* src, void* dst, long outer, long chunkBytes, long rowBytes, long offsetBytes) {
  const uint8_t* s = (const uint8_t*)src;
  uint8_t* d = (uint8_t*)dst + offsetBytes;
  if (outer == 1) {  // one long run: split it
    parallelChunks(chunkBytes, 1L << 17, [&](long a, long b) { std::memcpy(d + a, s + a, b - a); });
    return;
  }
  parallelChunks(outer, std::max(1L, (1L << 17) / std::max(1L, chunkBytes)), [&](long a, long b) {
    for (long o = a; o < b; o++) std::memcpy(d + o * rowBytes, s + o * chunkBytes, chunkBytes);
  });
}

long indexSelect(const void* src, const int32_t* idx, void* dst, int elemSize, long outer, long size, long n,
                 long inner) {
  const long bad = firstBadIndex(idx, n, size);
  if (bad >= 0) return bad;
  const long rowBytes = inner * elemSize;
  const uint8_t* s = (const uint8_t*)src;
  uint8_t* d = (uint8_t*)dst;
  parallelChunks(outer * n, std::max(1L, (1L << 16) / std::max(1L, rowBytes)), [&](long a, long b) {
    for (long r = a; r < b; r++) {
      const long o = r / n, i = r % n;
      std::memcpy(d + r * rowBytes, s + (o * size + idx[i]) * rowBytes, rowBytes);
    }
  });
  return -1;
}

long gather(const void* src, const int32_t* idx, void* dst, int elemSize, const long* ishape, int nd,
            const long* baseStrides, long dimStride, long size) {
  if (nd > kMaxDims || nd == 0) return -2;
  long total = 1;
  for (int d = 0; d < nd; d++) total *= ishape[d];
  const long bad = firstBadIndex(idx, total, size);
  if (bad >= 0) return bad;
  const long* sts[1] = {baseStrides};
  const bool ok = byWord(elemSize, [&](auto* w) {
    using T = std::remove_pointer_t<decltype(w)>;
    const T* s = (const T*)src;
    T* y = (T*)dst;
    const long last = baseStrides[nd - 1];
    stridedRuns<1>(ishape, nd, sts, kGrain, [&](long o, const long* off, long len) {
      for (long j = 0; j < len; j++) y[o + j] = s[off[0] + j * last + (long)idx[o + j] * dimStride];
    });
  });
  return ok ? -1 : -2;
}

long scatterAdd(void* out, const int32_t* idx, const void* src, bool f64, const long* ishape, int nd, int dim,
                const long* xStrides, const long* srcStrides, long size) {
  if (nd == 0 || dim < 0 || dim >= nd) return -2;
  long total = 1;
  for (int d = 0; d < nd; d++) total *= ishape[d];
  const long bad = firstBadIndex(idx, total, size);
  if (bad >= 0) return bad;
  if (f64)
    scatterAddAs((double*)out, idx, (const double*)src, ishape, nd, dim, xStrides, srcStrides);
  else
    scatterAddAs((float*)out, idx, (const float*)src, ishape, nd, dim, xStrides, srcStrides);
  return -1;
}

long maskCount(const uint8_t* mask, long n) {
  std::vector<long> start;
  return maskPrefix(mask, n, maskStep(n), start);
}

bool maskedSelect(const void* x, const uint8_t* mask, void* dst, int elemSize, long n) {
  std::vector<long> start;
  const long step = maskStep(n);
  maskPrefix(mask, n, step, start);
  return byWord(elemSize, [&](auto* w) {
    using T = std::remove_pointer_t<decltype(w)>;
    maskedSelectAs((const T*)x, mask, (T*)dst, n, step, start);
  });
}

long maskedScatter(const void* x, const uint8_t* mask, const void* src, long srcLen, void* dst, int elemSize, long n) {
  std::vector<long> start;
  const long step = maskStep(n);
  const long count = maskPrefix(mask, n, step, start);
  if (count > srcLen) return count;
  const bool ok = byWord(elemSize, [&](auto* w) {
    using T = std::remove_pointer_t<decltype(w)>;
    maskedScatterAs((const T*)x, mask, (const T*)src, (T*)dst, n, step, start);
  });
  return ok ? -1 : -2;
}

}  // namespace ot
