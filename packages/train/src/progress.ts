// What the trainer shows while it runs: a one-line progress bar on a terminal, plain log lines
// otherwise (files, pipes, CI), and the model-FLOPs estimate behind the MFU column.

/** The architecture numbers the FLOPs estimate needs (a Hugging Face config's names). */
export interface FlopsModelShape {
  /** All parameters (tied embeddings counted once). */
  numParameters: number;
  /** Parameters of the input embedding that no matmul uses (0 when tied to the output projection). */
  embeddingParameters: number;
  numLayers: number;
  numHeads: number;
  headDim: number;
}

/**
 * Training FLOPs per token, as TorchTitan and the PaLM paper count them: 6 × (parameters that
 * take part in matmuls: all but an untied input embedding) for the forward and backward passes,
 * plus the attention scores and their use, 12 × layers × heads × head_dim × context, with the
 * context being the packed row's token budget `seqLen` (an upper bound: packed samples are shorter).
 */
export function flopsPerToken(m: FlopsModelShape, seqLen: number): number {
  return 6 * (m.numParameters - m.embeddingParameters) + 12 * m.numLayers * m.numHeads * m.headDim * seqLen;
}

/** One step's numbers as shown. */
export interface ProgressInfo {
  step: number;
  totalSteps: number;
  loss: number;
  gradNorm: number;
  lr: number;
  /** Tokens per second over the whole job (all ranks) since this run started. */
  tokensPerSecond: number;
  /** Model FLOPs utilisation in [0, 1], or null when no peak is known ('n/a'). */
  mfu: number | null;
  /** Live tensor bytes of this process. */
  memoryBytes: number;
  /** Seconds until the last step of this run. */
  etaSeconds: number;
}

/** `1m05s`, `42s`, `?`. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

/** `31.2%`, or `n/a` when unknown. */
export function formatMfu(mfu: number | null): string {
  if (mfu === null || !Number.isFinite(mfu)) return 'n/a';
  return `${(mfu * 100).toFixed(mfu < 0.001 ? 3 : 1)}%`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** The progress bar (no newline; the caller starts it with `\r` to redraw in place). */
export function renderProgressBar(p: ProgressInfo, width = 24): string {
  const fill = Math.max(0, Math.min(width, Math.round((width * p.step) / p.totalSteps)));
  return (
    `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(4)} ` +
    `gnorm ${p.gradNorm.toFixed(3)} ${p.tokensPerSecond.toFixed(0)} tok/s MFU ${formatMfu(p.mfu)} ` +
    `mem ${mib(p.memoryBytes)} ETA ${formatDuration(p.etaSeconds)}`
  );
}

/** One plain log line (no terminal control characters). */
export function renderLogLine(p: ProgressInfo): string {
  return (
    `step ${String(p.step).padStart(5)}/${p.totalSteps}  loss ${p.loss.toFixed(4)}  grad norm ${p.gradNorm.toFixed(3)}  ` +
    `lr ${p.lr.toExponential(2)}  ${p.tokensPerSecond.toFixed(0)} tok/s  MFU ${formatMfu(p.mfu)}  mem ${mib(p.memoryBytes)}  ETA ${formatDuration(p.etaSeconds)}`
  );
}

/** A stream the reporter writes to (`isTTY` as Node's process.stdout has it). */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/**
 * Shows steps on `out`: on a terminal one bar redrawn in place (`\r`, padded to erase the previous
 * one), otherwise a log line every `logEvery` steps and at the first and last step.
 */
export class ProgressReporter {
  private drawn = 0;
  readonly tty: boolean;

  constructor(
    private readonly out: ProgressStream,
    private readonly opts: { logEvery: number; firstStep: number; lastStep: number },
  ) {
    this.tty = out.isTTY === true;
  }

  /** The steps of this run: a log line is always written for the first and the last. */
  setSteps(firstStep: number, lastStep: number): void {
    this.opts.firstStep = firstStep;
    this.opts.lastStep = lastStep;
  }

  /** Show step `p`. */
  step(p: ProgressInfo): void {
    if (this.tty) {
      let line = renderProgressBar(p);
      const cols = this.out.columns;
      if (cols && cols > 20 && line.length > cols - 1) line = line.slice(0, cols - 1);
      this.out.write(`\r${line}${' '.repeat(Math.max(0, this.drawn - line.length))}`);
      this.drawn = line.length;
      if (p.step === this.opts.lastStep) this.newline();
    } else if (p.step % this.opts.logEvery === 0 || p.step === this.opts.lastStep || p.step === this.opts.firstStep) {
      this.out.write(`${renderLogLine(p)}\n`);
    }
  }

  /** Write a message line (ends the bar's line first on a terminal). */
  message(s: string): void {
    this.newline();
    this.out.write(`${s}\n`);
  }

  private newline(): void {
    if (this.tty && this.drawn > 0) {
      this.out.write('\n');
      this.drawn = 0;
    }
  }
}
