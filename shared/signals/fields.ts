import { InputError } from '../errors';

/**
 * Case-insensitive, typed reads from untrusted JSON. Sentinel's key casing is not reliable across sources
 * (camelCase from ARM, PascalCase from Logic Apps outputs and alert records), so every read goes through here.
 * Each failed read names the full path of the field, which becomes the 400 message.
 */
export class Fields {
  private keys: string[] | undefined;

  private constructor(
    readonly path: string,
    private readonly record: Record<string, unknown>,
  ) {}

  static of(value: unknown, path: string): Fields {
    if (!isRecord(value)) throw new InputError(path, `expected an object, got ${describe(value)}`);
    return new Fields(path, value);
  }

  /** The raw value, whatever the key's casing. Only own properties: never the prototype chain. */
  get(name: string): unknown {
    if (Object.hasOwn(this.record, name)) return this.record[name];
    // Most misses are fields that are simply absent: comparing lengths first rules out nearly every key without
    // lower-casing it, which is cheaper than building a lower-cased index for every object.
    this.keys ??= Object.keys(this.record);
    for (const key of this.keys) if (key.length === name.length && sameLettersIgnoringCase(key, name)) return this.record[key];
    return undefined;
  }

  at(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  /** A non-empty trimmed string, or undefined when absent, null or blank. Numbers are accepted as their text. */
  string(name: string): string | undefined {
    const value = this.get(name);
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'number' && Number.isFinite(value)) return String(value);
    if (typeof value !== 'string') throw new InputError(this.at(name), `expected a string, got ${describe(value)}`);
    const trimmed = value.trim();
    return trimmed === '' ? undefined : trimmed;
  }

  requiredString(name: string): string {
    const value = this.string(name);
    if (value === undefined) throw new InputError(this.at(name), 'is required');
    return value;
  }

  number(name: string): number | undefined {
    const value = this.get(name);
    if (value === undefined || value === null || value === '') return undefined;
    const parsed = typeof value === 'string' ? Number(value) : value;
    if (typeof parsed !== 'number' || !Number.isFinite(parsed)) {
      throw new InputError(this.at(name), `expected a number, got ${describe(value)}`);
    }
    return parsed;
  }

  object(name: string): Fields | undefined {
    const value = this.get(name);
    if (value === undefined || value === null) return undefined;
    return Fields.of(value, this.at(name));
  }

  array(name: string): unknown[] {
    const value = this.get(name);
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) throw new InputError(this.at(name), `expected an array, got ${describe(value)}`);
    return value;
  }

  /** An array of strings; blanks dropped. A lone string is accepted as a one-element list. */
  strings(name: string): string[] {
    const value = this.get(name);
    if (value === undefined || value === null) return [];
    if (typeof value === 'string') return value.trim() ? [value.trim()] : [];
    if (!Array.isArray(value)) throw new InputError(this.at(name), `expected an array, got ${describe(value)}`);
    const out: string[] = [];
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === null || item === undefined) continue;
      if (typeof item !== 'string') throw new InputError(`${this.at(name)}[${i}]`, `expected a string, got ${describe(item)}`);
      const trimmed = item.trim();
      if (trimmed) out.push(trimmed);
    }
    return out;
  }

  /** All own properties, for carrying an entity we do not interpret. */
  raw(): Record<string, unknown> {
    return this.record;
  }
}

/** ASCII case-insensitive equality of two strings of equal length, without allocating lower-cased copies. */
function sameLettersIgnoringCase(a: string, b: string): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const lx = x | 0x20;
    if (lx !== (y | 0x20) || lx < 0x61 || lx > 0x7a) return false;
  }
  return true;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}
