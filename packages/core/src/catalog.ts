/** A named collection of one kind of plugin-provided thing, with errors that list what is installed. */
export class Catalog<T> {
  private readonly entries = new Map<string, T>();
  constructor(private readonly kind: string) {}

  /** Register `value` under `name`; a second registration under one name replaces the first. */
  register(name: string, value: T): void {
    this.entries.set(name, value);
  }

  /** True when `name` is registered. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The entry for `name`, or an error listing the installed names. */
  get(name: string): T {
    const v = this.entries.get(name);
    if (v === undefined) {
      const known = [...this.entries.keys()];
      throw new Error(`unknown ${this.kind} '${name}'; installed: ${known.length ? known.join(', ') : '(none)'}`);
    }
    return v;
  }

  /** Registered names, in registration order. */
  names(): string[] {
    return [...this.entries.keys()];
  }
}
