import type { Backend } from './backend.js';

/**
 * A block of device memory shared by every tensor that views it. Reference counted:
 * each tensor holds one reference and the bytes return to the backend when the last goes.
 */
export class Storage {
  private refs = 1;
  constructor(
    /** The backend that owns the memory. */
    readonly backend: Backend,
    /** Size in bytes. */
    readonly byteLength: number,
    /** Backend-specific handle: an ArrayBuffer on CPU, a device pointer elsewhere, null on meta. */
    readonly handle: unknown,
  ) {}

  /** Current reference count (0 once freed). */
  get refCount(): number {
    return this.refs;
  }

  /** Add a reference. */
  retain(): this {
    if (this.refs <= 0) throw new Error('storage: retain after free');
    this.refs++;
    return this;
  }

  /** Drop a reference; frees the memory when it was the last. */
  release(): void {
    if (this.refs <= 0) throw new Error('storage: released more often than retained');
    if (--this.refs === 0) this.backend.free(this);
  }
}
