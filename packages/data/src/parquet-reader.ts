import {
  type AsyncBuffer,
  asyncBufferFromFile,
  type FileMetaData,
  parquetMetadataAsync,
  parquetReadObjects,
} from 'hyparquet';

/**
 * Reads a Parquet file one row group at a time (only the current row group is in memory).
 * `row` is the index of the next row, so a reader can be re-opened exactly there after a restart.
 */
export class ParquetReader {
  private file: AsyncBuffer | null = null;
  private meta: FileMetaData | null = null;
  private groupStart = 0;
  private groupRows: Record<string, unknown>[] = [];
  private loadedGroup = -1;

  constructor(
    readonly path: string,
    /** Index of the next row. */
    public row = 0,
  ) {}

  /** Total rows of the file (reads the footer on first use). */
  async numRows(): Promise<number> {
    const m = await this.metadata();
    return Number(m.num_rows);
  }

  /** The next row as an object keyed by column name, or null at the end of the file. */
  async next(): Promise<{ value: Record<string, unknown>; row: number } | null> {
    const meta = await this.metadata();
    if (this.row >= Number(meta.num_rows)) return null;
    if (this.loadedGroup < 0 || this.row >= this.groupStart + this.groupRows.length)
      await this.loadGroupOf(this.row, meta);
    const value = this.groupRows[this.row - this.groupStart] as Record<string, unknown>;
    return { value, row: this.row++ };
  }

  private async metadata(): Promise<FileMetaData> {
    if (this.meta) return this.meta;
    try {
      this.file = await asyncBufferFromFile(this.path);
      this.meta = await parquetMetadataAsync(this.file);
    } catch (e) {
      throw new Error(`Parquet source: cannot read ${this.path}: ${(e as Error).message}`);
    }
    return this.meta;
  }

  private async loadGroupOf(row: number, meta: FileMetaData): Promise<void> {
    let start = 0;
    for (let g = 0; g < meta.row_groups.length; g++) {
      const n = Number((meta.row_groups[g] as { num_rows: bigint | number }).num_rows);
      if (row < start + n) {
        this.groupRows = (await parquetReadObjects({
          file: this.file as AsyncBuffer,
          metadata: meta,
          rowStart: start,
          rowEnd: start + n,
        })) as Record<string, unknown>[];
        this.groupStart = start;
        this.loadedGroup = g;
        return;
      }
      start += n;
    }
    throw new Error(`Parquet source: ${this.path} has no row ${row}`);
  }
}
