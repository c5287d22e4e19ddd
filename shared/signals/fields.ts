import { InputError, quote } from '../errors';
import { displayText } from '../limits';
import { NameIndex } from './names';

/** Where an object sits in the payload: `at(name)` spells out a field's path, which only an error needs. */
export interface Location {
  at(name: string): string;
}

/** An object at a fixed place in the payload (`object.properties`); the empty path is the payload itself. */
export class PathLocation implements Location {
  constructor(readonly path: string) {}

  at(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }
}

/**
 * Case-insensitive, typed reads from untrusted JSON. Sentinel's key casing is not reliable across sources
 * (camelCase from ARM, PascalCase from Logic Apps outputs and alert records), so every read of a payload goes through
 * this module: `Fields` looks up one name at a time (the alert record, the plan request); `FieldNames` reads the
 * declared fields of an incident's objects and entities in one pass over each object's keys. Each failed read names the
 * full path of the field, which becomes the 400 message.
 */
export class Fields extends PathLocation {
  private keys: string[] | undefined;

  private constructor(
    path: string,
    private readonly record: Record<string, unknown>,
  ) {
    super(path);
  }

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

  /** A non-empty trimmed string, or undefined when absent, null or blank. Numbers are accepted as their text. */
  string(name: string): string | undefined {
    return textOf(this.get(name), this, name);
  }

  requiredString(name: string): string {
    return requiredTextOf(this.get(name), this, name);
  }

  number(name: string): number | undefined {
    return numberOf(this.get(name), this, name);
  }

  object(name: string): Fields | undefined {
    const record = recordOf(this.get(name), this, name);
    return record && new Fields(this.at(name), record);
  }

  array(name: string): unknown[] {
    return arrayOf(this.get(name), this, name);
  }

  strings(name: string): string[] {
    return stringsOf(this.get(name), this, name);
  }
}

/** Finds one of `values` in a text whatever its case (`high` -> `High`). */
export function spelledAs<const T extends string>(values: readonly T[]): (text: string) => T | undefined {
  const index = new NameIndex(values.map((value) => [value, value] as const));
  return (text) => index.get(text, false);
}

/** The object under field `name` of the object at `parent` (`…alerts[3].properties`), spelled out only for an error. */
export class FieldLocation implements Location {
  constructor(
    private readonly parent: Location,
    private readonly name: string,
  ) {}

  at(name: string): string {
    return `${this.parent.at(this.name)}.${name}`;
  }
}

/** The index-th item of a list (`…alerts[3]`): its path is spelled out only if an error names it. */
export class ItemLocation implements Location {
  constructor(
    private readonly list: Location,
    private readonly name: string,
    private readonly index: number,
  ) {}

  get path(): string {
    return `${this.list.at(this.name)}[${this.index}]`;
  }

  at(name: string): string {
    return `${this.path}.${name}`;
  }
}

/**
 * A field read from untrusted JSON as text: a non-empty trimmed string, or undefined when absent, null or blank.
 * Numbers are accepted as their text; anything else is an error naming the field's path.
 */
export function textOf(value: unknown, where: Location, name: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') {
    const trimmed = value.trim();
    return trimmed === '' ? undefined : trimmed;
  }
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new InputError(where.at(name), `expected a string, got ${describe(value)}`);
}

/**
 * Text kept for display and for matching names, never to find anyone by: one line, at most `max` characters — cut and
 * marked beyond, with its path and length added to `cuts` for the signal's notes.
 */
export function boundedText(text: string, where: Location, name: string, max: number, cuts: string[]): string;
export function boundedText(text: string | undefined, where: Location, name: string, max: number, cuts: string[]): string | undefined;
export function boundedText(text: string | undefined, where: Location, name: string, max: number, cuts: string[]): string | undefined {
  if (text === undefined) return undefined;
  if (text.length > max) cuts.push(`${where.at(name)} (${text.length} characters)`);
  return displayText(text, max);
}

/** Say in the signal's notes what was cut, so that whoever reads the decision knows the payload said more. */
export function noteCuts(cuts: string[], notes: string[]): void {
  if (cuts.length === 0) return;
  const shown = cuts.slice(0, 3).join(', ');
  notes.push(`${cuts.length} field(s) longer than their limits were cut and marked ${JSON.stringify('…')}: ${shown}${cuts.length > 3 ? ', …' : ''}`);
}

export function requiredTextOf(value: unknown, where: Location, name: string): string {
  const text = textOf(value, where, name);
  if (text === undefined) throw new InputError(where.at(name), 'is required');
  return text;
}

/** A number, or a string holding one; undefined when absent, null or empty. */
export function numberOf(value: unknown, where: Location, name: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const parsed = typeof value === 'string' ? Number(value) : value;
  if (typeof parsed !== 'number' || !Number.isFinite(parsed)) throw new InputError(where.at(name), `expected a number, got ${describe(value)}`);
  return parsed;
}

/** An object, or undefined when absent or null. */
export function recordOf(value: unknown, where: Location, name: string): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw new InputError(where.at(name), `expected an object, got ${describe(value)}`);
  return value;
}

/** An array; empty when absent or null. */
export function arrayOf(value: unknown, where: Location, name: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InputError(where.at(name), `expected an array, got ${describe(value)}`);
  return value;
}

/** An array of strings, trimmed, blanks and nulls dropped. A lone string is accepted as a one-element list. */
export function stringsOf(value: unknown, where: Location, name: string): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return value.trim() ? [value.trim()] : [];
  if (!Array.isArray(value)) throw new InputError(where.at(name), `expected an array, got ${describe(value)}`);
  const out: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (item === null || item === undefined) continue;
    if (typeof item !== 'string') throw new InputError(`${where.at(name)}[${i}]`, `expected a string, got ${describe(item)}`);
    const trimmed = item.trim();
    if (trimmed) out.push(trimmed);
  }
  return out;
}

/** What `FieldNames.read` found in an object: each declared field under its declared name, absent when not sent. */
export type FieldValues<N extends string> = { readonly [K in N]?: unknown };

/** The values a `FieldNames` reads: `FieldValuesOf<typeof HOST>`. */
export type FieldValuesOf<F> = F extends FieldNames<infer N> ? FieldValues<N> : never;

/**
 * The fields one kind of object is read for, declared by name: `new FieldNames(['hostName', 'dnsDomain']).read(o)`
 * is `{ hostName, dnsDomain }` from `o` however its keys are cased. Adding a name adds a field and moves no other.
 * Same rules as `Fields.get`: own keys only; a key spelled exactly as declared wins, otherwise the first key equal to
 * the name without regard to ASCII case.
 */
export class FieldNames<const N extends string> {
  /** Each name under its own spelling: the usual key, found with one lookup. */
  private readonly byName = new Map<string, N>();

  constructor(readonly names: readonly N[]) {
    for (const name of names) {
      // The values are a plain object: an absent field named like an Object.prototype member would read as inherited.
      if (name in Object.prototype) throw new Error(`"${name}" cannot be a field name: every object inherits it`);
      if (names.some((other) => other !== name && other.length === name.length && sameLettersIgnoringCase(other, name))) {
        throw new Error(`"${name}" is declared twice (names are compared without regard to case)`);
      }
      this.byName.set(name, name);
    }
  }

  read(record: Record<string, unknown>): FieldValues<N> {
    const values: { [K in N]?: unknown } = {};
    for (const key of Object.keys(record)) {
      const name = this.nameOf(key);
      // An exact spelling replaces what a key in another case left; a key in another case only fills an empty field.
      if (name !== undefined && (key === name || !Object.hasOwn(values, name))) values[name] = record[key];
    }
    return values;
  }

  /** The declared name `key` spells, exactly or but for ASCII case; undefined when this kind reads no such field. */
  private nameOf(key: string): N | undefined {
    const exact = this.byName.get(key);
    if (exact !== undefined) return exact;
    for (const name of this.names) if (name.length === key.length && sameLettersIgnoringCase(name, key)) return name;
    return undefined;
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
  if (typeof value === 'string') return `the string ${quote(value)}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}
