import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';

/** A file opened for positional reads. The reader never reads past `size`. */
export interface RandomAccessFile {
  /** Size in bytes when opened. */
  readonly size: number;
  /** Read up to `dst.length` bytes at `position` into `dst`; returns how many were read (0 at end of file). */
  read(dst: Uint8Array, position: number): number;
  /** Close the file. */
  close(): void;
}

/** Opens a file for positional reads; injectable so tests can count the bytes a reader reads. */
export type FileOpener = (path: string) => RandomAccessFile;

/** The default opener: a Node file descriptor read with `fs.readSync(fd, buf, 0, n, position)`. */
export const nodeFileOpener: FileOpener = (path) => {
  const fd = openSync(path, 'r');
  let size: number;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path}: not a regular file`);
    size = st.size;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let open = true;
  return {
    size,
    read(dst, position) {
      if (!open) throw new Error(`${path}: read after close`);
      return readSync(fd, dst, 0, dst.length, position);
    },
    close() {
      if (open) {
        open = false;
        closeSync(fd);
      }
    },
  };
};

const CHUNK = 1 << 30;

/** Fill `dst` from `position`, looping over short reads; an early end of file is an error naming `path`. */
export function readFully(file: RandomAccessFile, dst: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < dst.length) {
    const want = Math.min(CHUNK, dst.length - done);
    const n = file.read(dst.subarray(done, done + want), position + done);
    if (!(n > 0)) {
      throw new Error(
        `safetensors ${path}: unexpected end of file reading ${dst.length} bytes at byte ${position} ` +
          `(got ${done}; was the file changed while open?)`,
      );
    }
    done += n;
  }
}

/** A file opened for positional writes (the parallel Hugging Face export writes through it). */
export interface WritableFile {
  /** Write up to `src.length` bytes at `position`; returns how many were written. */
  write(src: Uint8Array, position: number): number;
  /** Set the file's size (extends with zeros, sparse where the file system can). */
  truncate(size: number): void;
  /** Flush the file's data to stable storage (fsync). */
  sync(): void;
  /** Close the file. */
  close(): void;
}

/** Opens a file for positional writes: `create` makes a new empty file (replacing one), otherwise an existing one is opened. */
export type FileWriteOpener = (path: string, opts: { create: boolean }) => WritableFile;

/** The default write opener: a Node file descriptor (`'w'` to create, `'r+'` otherwise) and `fs.writeSync`. */
export const nodeFileWriteOpener: FileWriteOpener = (path, { create }) => {
  const fd = openSync(path, create ? 'w' : 'r+');
  let open = true;
  return {
    write(src, position) {
      if (!open) throw new Error(`${path}: write after close`);
      return writeSync(fd, src, 0, src.length, position);
    },
    truncate: (size) => ftruncateSync(fd, size),
    sync: () => fsyncSync(fd),
    close() {
      if (open) {
        open = false;
        closeSync(fd);
      }
    },
  };
};

/** Write all of `src` at `position`, looping over short writes. */
export function writeFully(file: WritableFile, src: Uint8Array, position: number): void {
  let done = 0;
  while (done < src.length) {
    const n = file.write(src.subarray(done, Math.min(src.length, done + CHUNK)), position + done);
    if (!(n > 0)) throw new Error(`short write of ${src.length} bytes at byte ${position}`);
    done += n;
  }
}
