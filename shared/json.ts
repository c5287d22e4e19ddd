import { InputError } from './errors';

/** Keys that would let a payload reach Object.prototype if some later code merged it into another object. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const MAYBE_FORBIDDEN = /__proto__|constructor|prototype|\\u/;

/**
 * JSON.parse for untrusted text: a syntax error or a prototype-polluting key becomes an InputError naming where.
 * A leading byte order mark is ignored, as RFC 8259 allows: Windows tools write one (PowerShell 5's `Out-File`, Notepad).
 */
export function parseJson(raw: string, path = 'body'): unknown {
  const text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
  let forbidden: string | undefined;
  let value: unknown;
  // A reviver makes JSON.parse several times slower: run it only when such a key could be present at all
  // (spelled out, or hidden behind a \u escape).
  const suspicious = MAYBE_FORBIDDEN.test(text);
  try {
    value = suspicious
      ? JSON.parse(text, (key, v: unknown) => {
          if (forbidden === undefined && FORBIDDEN_KEYS.has(key)) forbidden = key;
          return v;
        })
      : JSON.parse(text);
  } catch (error) {
    // Thousands of nested arrays parse, but walking them with the reviver above runs out of stack.
    if (error instanceof RangeError) throw new InputError(path, 'nested too deeply: an incident is a few levels deep');
    throw new InputError(path, `invalid JSON: ${(error as Error).message}`);
  }
  if (forbidden !== undefined) throw new InputError(path, `the key "${forbidden}" is not allowed`);
  return value;
}

/** What a dead-letter record keeps of a body: JSON text (the ledger cuts it to fit). */
export function bodyText(body: unknown): string {
  try {
    return typeof body === 'string' ? body : (JSON.stringify(body) ?? String(body));
  } catch {
    return String(body);
  }
}
