import { open } from 'node:fs/promises';

/** One line of a JSONL file with its 1-based number. */
export interface JsonlLine {
  text: string;
  line: number;
}

const CHUNK = 1 << 16;

/**
 * Reads a JSONL file line by line in 64 KiB chunks (never the whole file). `offset`/`line` say
 * where the next line starts, so a reader can be re-opened exactly there after a restart.
 * Blank lines are passed over (they count for line numbers, not as records). The file is opened
 * for each chunk read and closed right after, so an abandoned reader holds no descriptor.
 */
export class JsonlReader {
  private pending: Buffer = Buffer.alloc(0);
  private readPos: number;
  private eof = false;
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });

  constructor(
    readonly file: string,
    /** Byte offset of the next line. */
    public offset = 0,
    /** Number of lines before `offset`. */
    public line = 0,
  ) {
    this.readPos = offset;
  }

  /** The next non-blank line, or null at the end of the file. */
  async next(): Promise<JsonlLine | null> {
    for (;;) {
      let nl = this.pending.indexOf(10);
      while (nl < 0 && !this.eof) {
        await this.fill();
        nl = this.pending.indexOf(10);
      }
      let bytes: Buffer;
      if (nl >= 0) {
        bytes = this.pending.subarray(0, nl);
        this.pending = this.pending.subarray(nl + 1);
        this.offset += nl + 1;
      } else {
        if (this.pending.length === 0) return null;
        bytes = this.pending;
        this.offset += bytes.length;
        this.pending = Buffer.alloc(0);
      }
      this.line++;
      let text = this.decoder.decode(bytes);
      if (text.endsWith('\r')) text = text.slice(0, -1);
      if (this.line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text.trim().length === 0) continue;
      return { text, line: this.line };
    }
  }

  private async fill(): Promise<void> {
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(this.file, 'r');
    } catch (e) {
      throw new Error(`JSONL source: cannot open ${this.file}: ${(e as Error).message}`);
    }
    const buf = Buffer.allocUnsafe(CHUNK);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(buf, 0, CHUNK, this.readPos));
    } finally {
      await fh.close();
    }
    if (bytesRead === 0) {
      this.eof = true;
      return;
    }
    this.readPos += bytesRead;
    this.pending = this.pending.length
      ? Buffer.concat([this.pending, buf.subarray(0, bytesRead)])
      : buf.subarray(0, bytesRead);
  }
}
