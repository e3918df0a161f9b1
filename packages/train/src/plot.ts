import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Canvas, drawText } from './png.js';
import type { MetricsRecord } from './trainer.js';

/** Read a run folder's metrics.jsonl. */
export function readMetrics(runDir: string): MetricsRecord[] {
  const file = join(runDir, 'metrics.jsonl');
  if (!existsSync(file))
    throw new Error(`plot: ${file} does not exist (is ${runDir} a run folder of omnitrain train?)`);
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      try {
        return JSON.parse(l) as MetricsRecord;
      } catch (e) {
        throw new Error(`plot: ${file}:${i + 1}: not JSON (${(e as Error).message})`);
      }
    });
}

function panel(
  c: Canvas,
  top: number,
  h: number,
  xs: number[],
  ys: number[],
  color: [number, number, number],
  xmax: number,
  title: string,
): void {
  const left = 70;
  const right = c.width - 20;
  const bottom = top + h;
  const grey: [number, number, number] = [200, 200, 200];
  const finite = ys.filter(Number.isFinite);
  const lo = Math.min(...finite, 0);
  const hi = Math.max(...finite, 1e-9);
  for (let k = 0; k <= 4; k++) {
    const y = bottom - (h * k) / 4;
    c.line(left, y, right, y, grey);
  }
  c.line(left, top, left, bottom, [0, 0, 0]);
  c.line(left, bottom, right, bottom, [0, 0, 0]);
  const black: [number, number, number] = [0, 0, 0];
  const label = (v: number) => (Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(v >= 100 ? 0 : 2));
  drawText(c, 4, top, label(hi), black);
  drawText(c, 4, bottom - 10, label(lo), black);
  drawText(c, left + 8, top + 4, title, color);
  drawText(c, right - 8 * String(xmax).length, bottom + 6, String(xmax), black);
  drawText(c, left, bottom + 6, '0', black);
  const px = (x: number) => left + ((right - left) * x) / Math.max(1, xmax);
  const py = (y: number) => bottom - (h * (y - lo)) / (hi - lo);
  for (let i = 1; i < xs.length; i++) {
    if (!Number.isFinite(ys[i - 1]!) || !Number.isFinite(ys[i]!)) continue;
    c.line(px(xs[i - 1]!), py(ys[i - 1]!), px(xs[i]!), py(ys[i]!), color, 2);
  }
}

/**
 * Draw the loss (top, blue, y from 0) and tokens/s (bottom, green, y from 0) curves of a run
 * against the step into `out` (default RUN_DIR/plot.png). Returns the file written.
 */
export function plotRun(runDir: string, out = join(runDir, 'plot.png')): string {
  const m = readMetrics(runDir);
  if (!m.length) throw new Error(`plot: ${join(runDir, 'metrics.jsonl')} has no records yet`);
  const c = new Canvas(800, 520);
  const xs = m.map((r) => r.step);
  const xmax = Math.max(...xs);
  const loss = m.map((r) => r.loss);
  const tokS = m.map((r) => r.tokens_per_s);
  panel(c, 20, 280, xs, loss, [31, 119, 180], xmax, 'loss');
  panel(c, 340, 150, xs, tokS, [44, 160, 44], xmax, 'tokens/s');
  writeFileSync(out, c.toPng());
  return out;
}
