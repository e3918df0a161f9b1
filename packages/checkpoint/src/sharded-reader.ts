import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type OpenOptions, SafetensorsFile, type SafetensorsSource, SourceBase, type TensorInfo } from './reader.js';

/** File name of an unsharded Hugging Face checkpoint. */
export const SINGLE_FILE = 'model.safetensors';
/** File name of the index of a sharded Hugging Face checkpoint. */
export const INDEX_FILE = 'model.safetensors.index.json';

/** Contents of `model.safetensors.index.json`. */
export interface SafetensorsIndex {
  /** `total_size`: bytes of tensor data over all shards, plus whatever else the writer recorded. */
  metadata: Record<string, unknown>;
  /** Tensor name -> shard file name (relative to the directory). */
  weight_map: Record<string, string>;
}

/** A shard name must be a plain file name inside the directory: no separators, no `..`, no NUL. */
function checkShardName(name: unknown, where: string): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new Error(`${where}: shard file name ${JSON.stringify(name)} is not a plain file name in the directory`);
  }
  return name;
}

/** Read and validate `model.safetensors.index.json`. */
export function readIndex(path: string): SafetensorsIndex {
  const where = `safetensors index ${path}`;
  const size = statSync(path).size;
  if (size > 100_000_000) throw new Error(`${where}: ${size} bytes is too large for an index`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${where}: not valid JSON: ${(e as Error).message}`);
  }
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!obj(json)) throw new Error(`${where}: not a JSON object`);
  const map = json.weight_map;
  if (!obj(map)) throw new Error(`${where}: weight_map must be an object of tensor name -> file name`);
  const weightMap: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(map)) weightMap[k] = checkShardName(v, `${where}: tensor '${k}'`);
  const metadata = json.metadata ?? {};
  if (!obj(metadata)) throw new Error(`${where}: metadata must be an object`);
  const total = metadata.total_size;
  if (total !== undefined && !(typeof total === 'number' && Number.isSafeInteger(total) && total >= 0)) {
    throw new Error(`${where}: metadata.total_size must be a non-negative integer, got ${JSON.stringify(total)}`);
  }
  return { metadata, weight_map: weightMap };
}

/** A sharded checkpoint: the index plus its shard files, read through one API. */
export class SafetensorsDir extends SourceBase {
  readonly metadata: Readonly<Record<string, string>>;
  /** The parsed index. */
  readonly index: SafetensorsIndex;
  private readonly shards = new Map<string, SafetensorsFile>();
  private readonly byPath = new Map<string, SafetensorsFile>();
  private readonly where = new Map<string, SafetensorsFile>();
  private readonly names: string[];

  constructor(
    readonly path: string,
    opts: OpenOptions = {},
  ) {
    super();
    const indexPath = join(path, INDEX_FILE);
    this.index = readIndex(indexPath);
    try {
      for (const [name, file] of Object.entries(this.index.weight_map)) {
        let shard = this.shards.get(file);
        if (!shard) {
          const shardPath = join(path, file);
          if (!existsSync(shardPath)) {
            throw new Error(`safetensors index ${indexPath}: tensor '${name}' is in ${file}, which does not exist`);
          }
          shard = new SafetensorsFile(shardPath, opts);
          this.shards.set(file, shard);
          this.byPath.set(shard.path, shard);
        }
        if (!shard.has(name)) {
          throw new Error(`safetensors index ${indexPath}: tensor '${name}' is not in its shard ${shard.path}`);
        }
        this.where.set(name, shard);
      }
    } catch (e) {
      this.close();
      throw e;
    }
    this.names = [...this.where.keys()].sort();
    this.metadata = this.shards.values().next().value?.metadata ?? Object.freeze(Object.create(null));
  }

  /** Paths of the shard files, in index order. */
  files(): string[] {
    return [...this.shards.values()].map((s) => s.path);
  }

  keys(): string[] {
    return [...this.names];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  info(name: string): TensorInfo {
    const shard = this.where.get(name);
    if (!shard) throw new Error(`safetensors ${join(this.path, INDEX_FILE)}: no tensor '${name}'`);
    return shard.info(name);
  }

  close(): void {
    for (const s of this.shards.values()) s.close();
  }

  protected readAt(file: string, dst: Uint8Array, position: number): void {
    const shard = this.byPath.get(file);
    if (!shard) throw new Error(`safetensors ${this.path}: ${file} is not one of its shards`);
    shard.readRange(dst, position);
  }
}

/**
 * Open a Hugging Face checkpoint directory: `model.safetensors` when present (Hugging Face's own
 * preference), otherwise `model.safetensors.index.json` and the shards it names. A path to a
 * `.safetensors` file opens that file. Every header is validated before anything is read.
 */
export function openSafetensorsDir(dir: string, opts: OpenOptions = {}): SafetensorsSource {
  if (statSync(dir).isFile()) return new SafetensorsFile(dir, opts);
  const single = join(dir, SINGLE_FILE);
  if (existsSync(single)) return new SafetensorsFile(single, opts);
  if (existsSync(join(dir, INDEX_FILE))) return new SafetensorsDir(dir, opts);
  throw new Error(`safetensors ${dir}: neither ${SINGLE_FILE} nor ${INDEX_FILE} is there`);
}
