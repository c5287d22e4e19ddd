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
 * this module: `Fields` looks up one name at a time (the alert record, the plan request); a `FieldTable` reads every
 * field of an incident's objects and entities in one pass. Each failed read names the full path of the field, which
 * becomes the 400 message.
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
export function boundedText(text: string | undefined, where: Location, name: string, max: number, cuts: string[]): string | undefined {
  if (text === undefined) return undefined;
  if (text.length > max) cuts.push(`${where.at(name)} (${text.length} characters)`);
  return displayText(text, max);
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

/**
 * The fields one kind of object is read for, found in one pass over the object's keys: the hot path for the
 * hundreds of entities of a large incident, where a case-insensitive lookup per wanted name (most of them absent, so
 * each a scan of the keys) cost more than parsing the JSON had. Same rules as `Fields.get`: own keys only; a key
 * spelled exactly as listed wins, otherwise the first key equal to the name without regard to ASCII case.
 */
export class FieldTable<const N extends string> {
  /** Each name, and its camelCase, PascalCase and lower-case spellings: the ways payloads really spell it. */
  private readonly spellings = new Map<string, number>();

  constructor(readonly names: readonly N[]) {
    if (names.length > 30) throw new Error('a field table tracks exact matches in a 30-bit mask, and slots in an Int8Array');
    names.forEach((name, i) => {
      for (const spelling of [name, name[0]?.toLowerCase() + name.slice(1), name[0]?.toUpperCase() + name.slice(1), name.toLowerCase()]) {
        if (!this.spellings.has(spelling)) this.spellings.set(spelling, i);
      }
    });
  }

  /**
   * The keys of the last object read that had a new key order, and the slot of each: objects of one kind in one
   * payload nearly always list the same keys in the same order, so the next one is matched by comparing keys
   * (internalized strings: a pointer comparison) instead of looking each up. Slot: the name's index for an exact
   * spelling, index + INEXACT for a spelling that matches only without regard to case, NO_SLOT for a key the table
   * does not read.
   */
  private lastKeys: string[] = [];
  private lastSlots: Int8Array = new Int8Array(0);

  /** The values of the table's names in `record`, by position in `names`; undefined where absent. */
  read(record: Record<string, unknown>): unknown[] {
    // for…in, not Object.keys: no array of keys per object, and V8 turns `record[key]` into a direct field load. It
    // also visits inherited enumerable keys, which the last keys (own keys only) never include: such an object
    // takes the path below, which reads own keys only.
    const values = new Array<unknown>(this.names.length);
    const keys = this.lastKeys;
    const slots = this.lastSlots;
    let exact = 0;
    let k = 0;
    for (const key in record) {
      if (key !== keys[k]) return this.readNewOrder(record);
      exact = fill(values, exact, slots[k++] as number, record[key]);
    }
    return k === keys.length ? values : this.readNewOrder(record);
  }

  /** `read` for an object whose keys differ from the last one's: each key looked up, and remembered for the next. */
  private readNewOrder(record: Record<string, unknown>): unknown[] {
    const keys = Object.keys(record);
    const slots = new Int8Array(keys.length);
    for (let k = 0; k < keys.length; k++) slots[k] = this.slotOf(keys[k] as string);
    this.lastKeys = keys;
    this.lastSlots = slots;
    const values = new Array<unknown>(this.names.length);
    let exact = 0;
    for (let k = 0; k < keys.length; k++) exact = fill(values, exact, slots[k] as number, record[keys[k] as string]);
    return values;
  }

  private slotOf(key: string): number {
    const i = this.spellings.get(key) ?? this.matchIgnoringCase(key);
    if (i === undefined) return NO_SLOT;
    return key === this.names[i] ? i : i + INEXACT;
  }

  private matchIgnoringCase(key: string): number | undefined {
    for (let i = 0; i < this.names.length; i++) {
      const name = this.names[i] as string;
      if (name.length === key.length && sameLettersIgnoringCase(name, key)) return i;
    }
    return undefined;
  }
}

const NO_SLOT = -1;
const INEXACT = 32;

/**
 * Stores a key's value in its slot: an exact spelling always; a case-insensitive one only if no exact spelling was
 * seen and the slot is still empty. `exact` has a bit per name found exactly spelled; the updated mask is returned.
 */
function fill(values: unknown[], exact: number, slot: number, value: unknown): number {
  if (slot === NO_SLOT) return exact;
  if (slot < INEXACT) {
    values[slot] = value;
    return exact | (1 << slot);
  }
  const name = slot - INEXACT;
  if ((exact & (1 << name)) === 0 && values[name] === undefined) values[name] = value;
  return exact;
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
