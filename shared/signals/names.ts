import { techniqueOf } from './identifiers';

/**
 * Names looked up in any case — a policy's tactics, techniques, products, labels and tags, severities, entity kinds —
 * because Sentinel's spelling of a name is not reliable. `T1078` also covers the sub-techniques (`T1078.004`) when
 * looked up as a technique.
 *
 * The names' own spellings are keys as well as the lower-cased ones, so the usual case — a name spelled as it was
 * listed — costs one lookup and no lower-cased copy; every other name is lower-cased once here.
 */
export class NameIndex<V> {
  private readonly byName = new Map<string, V>();
  /** How many names it holds, counting names that differ only in case once. */
  readonly size: number;

  /** When two entries differ only in case, the later one's value wins, under either spelling. */
  constructor(entries: ReadonlyArray<readonly [string, V]>) {
    for (const [name, value] of entries) this.byName.set(name.toLowerCase(), value);
    this.size = this.byName.size;
    for (const [name] of entries) {
      const value = this.byName.get(name.toLowerCase());
      if (value !== undefined) this.byName.set(name, value);
    }
  }

  /** A set of names, each in any case. */
  static of(names: readonly string[]): NameIndex<true> {
    return new NameIndex(names.map((name) => [name, true] as const));
  }

  /** The value for `name` in any case; with `technique`, a sub-technique falls back to its technique's value. */
  get(name: string, technique: boolean): V | undefined {
    const exact = this.byName.get(name);
    if (exact !== undefined) return exact;
    const lower = name.toLowerCase();
    const value = lower === name ? undefined : this.byName.get(lower);
    return value === undefined && technique ? this.byName.get(techniqueOf(lower)) : value;
  }

  /** The first of `names` that the index holds, in the spelling given: a device's first listed tag. */
  firstOf(names: readonly string[]): string | undefined {
    for (const name of names) if (this.get(name, false) !== undefined) return name;
    return undefined;
  }
}
