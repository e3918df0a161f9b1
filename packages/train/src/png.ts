import { crc32, deflateSync } from 'node:zlib';

/** An RGB pixel buffer to draw into. */
export class Canvas {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    background: [number, number, number] = [255, 255, 255],
  ) {
    this.data = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.data.set(background, i * 3);
  }

  /** Set one pixel (ignored outside the canvas). */
  set(x: number, y: number, c: readonly [number, number, number]): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.data.set(c, (y * this.width + x) * 3);
  }

  /** A line from (x0, y0) to (x1, y1), `thick` pixels wide. */
  line(x0: number, y0: number, x1: number, y1: number, c: readonly [number, number, number], thick = 1): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    const h = Math.floor(thick / 2);
    for (let i = 0; i <= n; i++) {
      const x = x0 + ((x1 - x0) * i) / n;
      const y = y0 + ((y1 - y0) * i) / n;
      for (let dx = -h; dx <= h; dx++) for (let dy = -h; dy <= h; dy++) this.set(x + dx, y + dy, c);
    }
  }

  /** The canvas as a PNG file (8-bit RGB, zlib-compressed). */
  toPng(): Buffer {
    const raw = Buffer.alloc((this.width * 3 + 1) * this.height);
    for (let y = 0; y < this.height; y++) {
      raw[y * (this.width * 3 + 1)] = 0;
      raw.set(this.data.subarray(y * this.width * 3, (y + 1) * this.width * 3), y * (this.width * 3 + 1) + 1);
    }
    const chunk = (type: string, body: Buffer) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(body.length);
      const tb = Buffer.concat([Buffer.from(type, 'latin1'), body]);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(tb) >>> 0);
      return Buffer.concat([len, tb, crc]);
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(this.width, 0);
    ihdr.writeUInt32BE(this.height, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // RGB
    return Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      chunk('IDAT', deflateSync(raw)),
      chunk('IEND', Buffer.alloc(0)),
    ]);
  }
}

// 3×5 bitmaps (rows top to bottom, 3 bits each) for axis labels.
const GLYPHS: Record<string, number[]> = {
  '0': [7, 5, 5, 5, 7],
  '1': [2, 6, 2, 2, 7],
  '2': [7, 1, 7, 4, 7],
  '3': [7, 1, 7, 1, 7],
  '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7],
  '6': [7, 4, 7, 5, 7],
  '7': [7, 1, 1, 1, 1],
  '8': [7, 5, 7, 5, 7],
  '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2],
  '-': [0, 0, 7, 0, 0],
  '/': [1, 1, 2, 4, 4],
  ' ': [0, 0, 0, 0, 0],
  a: [0, 7, 1, 7, 7],
  e: [7, 5, 7, 4, 7],
  k: [4, 5, 6, 5, 5],
  l: [6, 2, 2, 2, 7],
  n: [0, 6, 5, 5, 5],
  o: [0, 7, 5, 5, 7],
  p: [7, 5, 7, 4, 4],
  s: [7, 4, 7, 1, 7],
  t: [2, 7, 2, 2, 3],
};

/** Draw `text` (digits, '.', '-', '/', and the letters a e k l n o p s t) with its top-left corner at (x, y). */
export function drawText(
  c: Canvas,
  x: number,
  y: number,
  text: string,
  color: readonly [number, number, number],
  scale = 2,
): void {
  let cx = x;
  for (const ch of text) {
    const g = GLYPHS[ch] ?? GLYPHS[' ']!;
    for (let r = 0; r < 5; r++) {
      for (let b = 0; b < 3; b++) {
        if (!(g[r]! & (4 >> b))) continue;
        for (let dx = 0; dx < scale; dx++)
          for (let dy = 0; dy < scale; dy++) c.set(cx + b * scale + dx, y + r * scale + dy, color);
      }
    }
    cx += 4 * scale;
  }
}
