import { dirname, isAbsolute, resolve } from 'node:path';
import type { ChatMessage } from './chat-template.js';

/** Where a sample came from: the source's name, the file, and the 1-based line (JSONL) or 0-based row (Parquet). */
export interface SampleOrigin {
  source: string;
  file: string;
  line?: number;
  row?: number;
}

/** Kind of media a sample may reference. */
export type MediaKind = 'image' | 'audio' | 'video';

/** A reference to an image/audio/video file, kept for the modality packages (nothing is read here). */
export interface MediaRef {
  kind: MediaKind;
  /** The path as written in the record. */
  path: string;
  /** The path resolved against the data file's folder (URLs and absolute paths stay as they are). */
  resolved: string;
  /** The record field it came from. */
  field: string;
}

/** A sample read from a source, before tokenization. */
export type Sample =
  | { kind: 'text'; text: string; media: MediaRef[]; origin: SampleOrigin }
  | { kind: 'chat'; messages: ChatMessage[]; media: MediaRef[]; origin: SampleOrigin };

/** Where a record is, for messages: `file:line 3` or `file row 7`. */
export function describeOrigin(o: { file: string; line?: number; row?: number }): string {
  return o.line !== undefined ? `${o.file}:${o.line}` : `${o.file} row ${o.row}`;
}

/** A record that does not make a sample: a field is missing or has the wrong type, or the line is not JSON. */
export class BadRecordError extends Error {
  constructor(
    readonly file: string,
    readonly where: { line?: number; row?: number },
    readonly reason: string,
  ) {
    super(`${describeOrigin({ file, ...where })}: ${reason}`);
    this.name = 'BadRecordError';
  }
}

/** How records become samples. */
export interface SampleFields {
  /** 'text', 'chat', or 'auto' (chat when the messages field is present, text otherwise). Default 'auto'. */
  kind?: 'text' | 'chat' | 'auto';
  /** Field of the text. Default 'text'. */
  textField?: string;
  /** Field of the chat messages (an array, or in Parquet also a JSON string). Default 'messages'. */
  messagesField?: string;
  /** Fields holding media paths (a string or a list of strings) and their kind. Default images/image, audios/audio, videos/video. */
  mediaFields?: Record<string, MediaKind>;
}

const DEFAULT_MEDIA: Record<string, MediaKind> = {
  image: 'image',
  images: 'image',
  audio: 'audio',
  audios: 'audio',
  video: 'video',
  videos: 'video',
};

/** Turn one parsed record into a sample, or throw {@link BadRecordError} naming the field and the file. */
export function recordToSample(record: unknown, fields: SampleFields, origin: SampleOrigin): Sample {
  const where = { line: origin.line, row: origin.row };
  const bad = (reason: string) => new BadRecordError(origin.file, where, reason);
  if (record === null || typeof record !== 'object' || Array.isArray(record)) throw bad('record is not a JSON object');
  const r = record as Record<string, unknown>;
  const textField = fields.textField ?? 'text';
  const messagesField = fields.messagesField ?? 'messages';
  let kind = fields.kind ?? 'auto';
  if (kind === 'auto') kind = r[messagesField] !== undefined && r[messagesField] !== null ? 'chat' : 'text';
  const media: MediaRef[] = [];
  for (const [field, mk] of Object.entries(fields.mediaFields ?? DEFAULT_MEDIA)) {
    const v = r[field];
    if (v === undefined || v === null) continue;
    const list = Array.isArray(v) ? v : [v];
    for (const p of list) {
      if (typeof p !== 'string') throw bad(`field "${field}" must be a path or a list of paths`);
      const resolved = isAbsolute(p) || /^[a-z][a-z0-9+.-]*:\/\//i.test(p) ? p : resolve(dirname(origin.file), p);
      media.push({ kind: mk, path: p, resolved, field });
    }
  }
  if (kind === 'text') {
    const t = r[textField];
    if (t === undefined || t === null) throw bad(`missing field "${textField}"`);
    if (typeof t !== 'string') throw bad(`field "${textField}" must be a string, got ${typeof t}`);
    return { kind: 'text', text: t, media, origin };
  }
  let m = r[messagesField];
  if (m === undefined || m === null) throw bad(`missing field "${messagesField}"`);
  if (typeof m === 'string') {
    try {
      m = JSON.parse(m);
    } catch {
      throw bad(`field "${messagesField}" is a string that is not JSON`);
    }
  }
  if (!Array.isArray(m) || m.length === 0) throw bad(`field "${messagesField}" must be a non-empty list of messages`);
  m.forEach((msg, i) => {
    if (!msg || typeof msg !== 'object') throw bad(`${messagesField}[${i}] is not an object`);
    const mm = msg as Record<string, unknown>;
    if (typeof mm.role !== 'string') throw bad(`missing field "role" in ${messagesField}[${i}]`);
    if (typeof mm.content !== 'string') throw bad(`missing field "content" (a string) in ${messagesField}[${i}]`);
  });
  return { kind: 'chat', messages: m as ChatMessage[], media, origin };
}
