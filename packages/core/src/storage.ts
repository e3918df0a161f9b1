import type { Backend } from './backend.js';

/**
 * A block of device memory shared by every tensor that views it. Reference counted:
 * each tensor holds one reference and the bytes return to the backend when the last goes.
 *
 * The bytes can also be released early while the `Storage` object (and every tensor viewing
 * it) stays valid — PyTorch's `untyped_storage().resize_(0)` — with {@link Storage.releaseBytes},
 * and allocated again (zero-filled on CPU) with {@link Storage.ensureAllocated}. FSDP uses this
 * to free all-gathered parameters after a unit's forward while autograd still holds them, and
 * all-gathers into the same storage before the unit's backward. Touching the data of a released
 * storage throws (`storage released: ...`) instead of reading stale memory.
 */
export class Storage {
  private refs = 1;
  private current: unknown;
  /** Why the bytes were released (null while allocated). */
  private releasedFor: string | null = null;
  constructor(
    /** The backend that owns the memory. */
    readonly backend: Backend,
    /** Size in bytes (also while released: the size {@link Storage.ensureAllocated} restores). */
    readonly byteLength: number,
    /** Backend-specific handle: an ArrayBuffer on CPU, a device pointer elsewhere, null on meta. */
    handle: unknown,
  ) {
    this.current = handle;
  }

  /**
   * Backend-specific handle: an ArrayBuffer on CPU, a device pointer elsewhere, null on meta.
   * Throws while the bytes are released (see {@link Storage.releaseBytes}). A new handle
   * after each re-allocation: do not keep it across {@link Storage.ensureAllocated}.
   */
  get handle(): unknown {
    if (this.releasedFor !== null || this.refs <= 0) this.assertAllocated('storage.handle');
    return this.current;
  }

  /** Current reference count (0 once freed). */
  get refCount(): number {
    return this.refs;
  }

  /** False between {@link Storage.releaseBytes} and {@link Storage.ensureAllocated}, and once freed. */
  get isAllocated(): boolean {
    return this.releasedFor === null && this.refs > 0;
  }

  /** Add a reference. */
  retain(): this {
    if (this.refs <= 0) throw new Error('storage: retain after free');
    this.refs++;
    return this;
  }

  /**
   * Drop a reference; frees the memory when it was the last (already done if its bytes were
   * released). From then on this storage no longer reaches the memory (`handle` throws): a caching
   * backend may hand it to another tensor.
   */
  release(): void {
    if (this.refs <= 0) throw new Error('storage: released more often than retained');
    if (this.refs === 1 && this.releasedFor === null) {
      this.backend.free(this); // still one reference: the backend can read `handle`
      this.current = null;
    }
    this.refs--;
  }

  /**
   * Free the bytes now but keep this storage and the tensors viewing it (their shapes, offsets
   * and autograd links stay valid). The backend sees an ordinary free: live bytes drop by
   * `byteLength` and live storages by one. Any read or write of the data throws until
   * {@link Storage.ensureAllocated}. `reason` is appended to that error (say who released it and
   * what should have re-allocated it). No-op if already released.
   */
  releaseBytes(reason = 'released by releaseBytes()'): void {
    if (this.refs <= 0) throw new Error('storage: releaseBytes after free');
    if (this.releasedFor !== null) return;
    this.backend.free(this);
    this.current = null;
    this.releasedFor = reason;
  }

  /**
   * Allocate the bytes again after {@link Storage.releaseBytes}: an ordinary allocation of
   * `byteLength` bytes on the backend (live bytes rise, the peak follows; zero-filled on CPU, the
   * caller writes the data), adopted by this storage. `deviceIndex` is the N of `cuda:N`.
   * No-op while allocated.
   */
  ensureAllocated(deviceIndex = 0): void {
    if (this.refs <= 0) throw new Error('storage: ensureAllocated after free');
    if (this.releasedFor === null) return;
    // The fresh Storage is only a carrier of the new memory: its handle moves here, and the
    // backend's counters already count it as one live storage of byteLength bytes.
    this.current = this.backend.allocate(this.byteLength, 'uint8', deviceIndex).current;
    this.releasedFor = null;
  }

  /** Throw `storage released: <where> ...` unless the bytes are allocated (or `storage freed: ...`). */
  assertAllocated(where: string): void {
    if (this.refs <= 0) {
      throw new Error(
        `storage freed: ${where} touched ${this.byteLength} bytes on '${this.backend.name}' after its last tensor ` +
          'was disposed (the memory may already belong to another tensor)',
      );
    }
    if (this.releasedFor === null) return;
    throw new Error(
      `storage released: ${where} touched ${this.byteLength} bytes on '${this.backend.name}' whose memory was freed ` +
        `by releaseBytes() and not re-allocated (ensureAllocated) (${this.releasedFor})`,
    );
  }
}
