import {
  flopsPerToken,
  formatDuration,
  formatMfu,
  type ProgressInfo,
  ProgressReporter,
  renderLogLine,
} from '@omnitrain/train';
import { describe, expect, it } from 'vitest';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, columns: 200, write: (s: string) => writes.push(s) } };
}

const info = (step: number, over: Partial<ProgressInfo> = {}): ProgressInfo => ({
  step,
  totalSteps: 10,
  loss: 2.345678,
  gradNorm: 0.75,
  lr: 1e-3,
  tokensPerSecond: 1234.4,
  mfu: 0.1234,
  memoryBytes: 3 * 2 ** 20,
  etaSeconds: 65,
  ...over,
});

describe('progress bar and log lines', () => {
  it('on a TTY: one bar redrawn in place with step, loss, grad norm, tok/s, MFU, memory and ETA', () => {
    const { writes, stream } = fakeStream(true);
    const p = new ProgressReporter(stream, { logEvery: 5, firstStep: 1, lastStep: 10 });
    p.step(info(3));
    expect(writes).toHaveLength(1);
    const bar = writes[0]!;
    expect(bar.startsWith('\r[')).toBe(true);
    expect(bar).not.toContain('\n');
    expect(bar).toContain('[#######.................]'); // 3/10 of 24
    for (const part of [
      'step 3/10',
      'loss 2.3457',
      'gnorm 0.750',
      '1234 tok/s',
      'MFU 12.3%',
      'mem 3.0 MiB',
      'ETA 1m05s',
    ])
      expect(bar).toContain(part);
    // A shorter redraw pads over the previous bar; a message ends the bar's line first.
    p.step(info(4, { etaSeconds: 5, loss: 1 }));
    expect(writes[1]!.length).toBeGreaterThanOrEqual(bar.length);
    p.message('checkpoint: x');
    expect(writes.slice(2)).toEqual(['\n', 'checkpoint: x\n']);
    // The last step ends the line.
    p.step(info(10, { mfu: null, etaSeconds: 0 }));
    expect(writes.at(-2)).toContain('MFU n/a');
    expect(writes.at(-1)).toBe('\n');
  });

  it('not a TTY: plain lines (no \\r) every log_every steps and at the first and last step', () => {
    const { writes, stream } = fakeStream(false);
    const p = new ProgressReporter(stream, { logEvery: 5, firstStep: 1, lastStep: 7 });
    for (let s = 1; s <= 7; s++) p.step(info(s));
    expect(writes.map((w) => /step +(\d+)\//.exec(w)![1])).toEqual(['1', '5', '7']);
    for (const w of writes) {
      expect(w.endsWith('\n')).toBe(true);
      expect(w.includes('\r') || w.includes(String.fromCharCode(27))).toBe(false);
    }
    expect(writes[1]).toBe(
      'step     5/10  loss 2.3457  grad norm 0.750  lr 1.00e-3  1234 tok/s  MFU 12.3%  mem 3.0 MiB  ETA 1m05s\n',
    );
    expect(renderLogLine(info(2, { mfu: null }))).toContain('MFU n/a');
  });

  it('formats MFU, durations, and counts FLOPs per token as 6N + 12·L·H·D·S', () => {
    expect(formatMfu(0.5)).toBe('50.0%');
    expect(formatMfu(0.00012)).toBe('0.012%');
    expect(formatMfu(null)).toBe('n/a');
    expect(formatDuration(42)).toBe('42s');
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe('?');
    const shape = { numParameters: 1000, embeddingParameters: 100, numLayers: 2, numHeads: 4, headDim: 8 };
    expect(flopsPerToken(shape, 16)).toBe(6 * 900 + 12 * 2 * 4 * 8 * 16);
  });
});
