import { readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { JsonlReader } from './jsonl-reader.js';
import { ParquetReader } from './parquet-reader.js';
import { BadRecordError, recordToSample, type Sample, type SampleFields } from './sample.js';

/** A data source: JSONL/Parquet files and folders of them, with the fields that make samples. */
export interface SourceSpec extends SampleFields {
  /** Name used in errors, metadata and state. Default the first path's base name. */
  name?: string;
  /** Files and/or folders (searched recursively for `.jsonl`, `.json`, `.parquet`), read in sorted order. */
  path: string | string[];
  /** Relative weight when mixing several sources. Default 1. */
  weight?: number;
}

/** A record that was skipped, with where and why. */
export interface BadRecord {
  source: string;
  file: string;
  line?: number;
  row?: number;
  reason: string;
}

/** What to do with a record that is not valid JSON, or lacks a field: skip it and count it (default), or throw. */
export type BadRecordPolicy = 'skip' | 'throw';

/** Where a source is: file, position inside it, and how many records it has seen (all ranks counted). */
export interface SourceState {
  name: string;
  files: string[];
  fileIndex: number;
  /** JSONL: byte offset and line count of the next line. Parquet: next row. */
  offset: number;
  line: number;
  row: number;
  /** Records seen so far over all ranks (the sharding counter). */
  recordIndex: number;
  exhausted: boolean;
}

const EXTS = new Set(['.jsonl', '.json', '.parquet']);

function listFiles(p: string, name: string): string[] {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(p);
  } catch {
    throw new Error(`data source "${name}": path ${p} does not exist`);
  }
  if (st.isFile()) return [p];
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.isFile() && EXTS.has(extname(e.name).toLowerCase())) out.push(full);
    }
  };
  walk(p);
  return out;
}

/** The files of a source spec, sorted per folder; throws when there are none. */
export function resolveSourceFiles(spec: SourceSpec): string[] {
  const paths = (Array.isArray(spec.path) ? spec.path : [spec.path]).map((p) => resolve(p));
  const name = sourceName(spec);
  if (paths.length === 0) throw new Error(`data source "${name}": no path given`);
  const files = paths.flatMap((p) => listFiles(p, name));
  if (files.length === 0) {
    throw new Error(`data source "${name}" is empty: no .jsonl/.json/.parquet files under ${paths.join(', ')}`);
  }
  return files;
}

/** The name of a source: `spec.name`, else the first path's base name. */
export function sourceName(spec: SourceSpec): string {
  if (spec.name) return spec.name;
  const p = Array.isArray(spec.path) ? spec.path[0] : spec.path;
  return p ? basename(p) : 'source';
}

/**
 * Streams the samples of one source that belong to data-parallel rank `rank` of `worldSize`:
 * every record (non-blank JSONL line or Parquet row) gets a global index in file order, and rank
 * r keeps the records with index % worldSize === r. Shards are therefore disjoint and together
 * cover the data, for any number of files. Bad records are skipped and logged (or thrown).
 */
export class DataSource {
  readonly name: string;
  readonly files: string[];
  private fileIndex = 0;
  private recordIndex = 0;
  private exhausted = false;
  private jsonl: JsonlReader | null = null;
  private parquet: ParquetReader | null = null;

  constructor(
    readonly spec: SourceSpec,
    private readonly opts: {
      rank?: number;
      worldSize?: number;
      onBadRecord?: BadRecordPolicy;
      badRecords?: BadRecord[];
    } = {},
  ) {
    this.name = sourceName(spec);
    this.files = resolveSourceFiles(spec);
    const ws = opts.worldSize ?? 1;
    const rank = opts.rank ?? 0;
    if (!Number.isInteger(ws) || ws < 1 || !Number.isInteger(rank) || rank < 0 || rank >= ws) {
      throw new Error(`data source "${this.name}": invalid rank ${rank} of worldSize ${ws}`);
    }
  }

  /** The next sample of this rank's shard, or null when the source is finished. */
  async next(): Promise<Sample | null> {
    const ws = this.opts.worldSize ?? 1;
    const rank = this.opts.rank ?? 0;
    while (!this.exhausted) {
      const file = this.files[this.fileIndex] as string;
      const isParquet = extname(file).toLowerCase() === '.parquet';
      let value: unknown;
      let where: { line?: number; row?: number };
      let raw: string | null = null;
      if (isParquet) {
        this.parquet ??= new ParquetReader(file, 0);
        const r = await this.parquet.next();
        if (!r) {
          this.nextFile();
          continue;
        }
        value = r.value;
        where = { row: r.row };
      } else {
        this.jsonl ??= new JsonlReader(file, 0, 0);
        const r = await this.jsonl.next();
        if (!r) {
          this.nextFile();
          continue;
        }
        raw = r.text;
        where = { line: r.line };
      }
      const mine = this.recordIndex % ws === rank;
      this.recordIndex++;
      if (!mine) continue;
      try {
        if (raw !== null) {
          try {
            value = JSON.parse(raw);
          } catch (e) {
            throw new BadRecordError(file, where, `malformed JSON: ${(e as Error).message}`);
          }
        }
        return recordToSample(value, this.spec, { source: this.name, file, ...where });
      } catch (e) {
        if (!(e instanceof BadRecordError) || this.opts.onBadRecord === 'throw') {
          throw e instanceof BadRecordError ? new Error(`data source "${this.name}": ${e.message}`) : e;
        }
        this.opts.badRecords?.push({ source: this.name, file, ...where, reason: e.reason });
      }
    }
    return null;
  }

  /** True when every file has been read. */
  get done(): boolean {
    return this.exhausted;
  }

  /** Where the source is (plain JSON). */
  state(): SourceState {
    return {
      name: this.name,
      files: [...this.files],
      fileIndex: this.fileIndex,
      offset: this.jsonl?.offset ?? 0,
      line: this.jsonl?.line ?? 0,
      row: this.parquet?.row ?? 0,
      recordIndex: this.recordIndex,
      exhausted: this.exhausted,
    };
  }

  /** Continue from a {@link state}: the files must be the same list. */
  async restore(s: SourceState): Promise<void> {
    if (s.name !== this.name || JSON.stringify(s.files) !== JSON.stringify(this.files)) {
      throw new Error(
        `data source "${this.name}": the saved state is for source "${s.name}" with files [${s.files.join(', ')}], not [${this.files.join(', ')}]`,
      );
    }
    await this.close();
    this.fileIndex = s.fileIndex;
    this.recordIndex = s.recordIndex;
    this.exhausted = s.exhausted;
    if (!s.exhausted) {
      const file = this.files[s.fileIndex] as string;
      if (extname(file).toLowerCase() === '.parquet') this.parquet = new ParquetReader(file, s.row);
      else this.jsonl = new JsonlReader(file, s.offset, s.line);
    }
  }

  /** Drop the readers (no descriptor is held between reads; kept for symmetry and future remote sources). */
  async close(): Promise<void> {
    this.jsonl = null;
    this.parquet = null;
  }

  private nextFile(): void {
    this.jsonl = null;
    this.parquet = null;
    this.fileIndex++;
    if (this.fileIndex >= this.files.length) {
      this.exhausted = true;
      if (this.recordIndex === 0) {
        throw new Error(`data source "${this.name}" is empty: no records in ${this.files.join(', ')}`);
      }
    }
  }
}
