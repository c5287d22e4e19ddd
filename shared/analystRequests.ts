import type { Analyst } from './actions/approval';
import { ACTION_KINDS, type ActionKind } from './actions/catalogue';
import { IDEMPOTENCY_KEY_PATTERN } from './actions/idempotency';
import type { Caller } from './auth/caller';
import { InputError, quote } from './errors';
import { LEDGER_STATES, type LedgerFilter, type LedgerState } from './ledger/ledger';
import { TEXT_LIMITS } from './limits';
import { Fields } from './signals/fields';
import { parseIncidentArmId } from './signals/identifiers';

/** What the analysts' routes read from a request, each refused with a 400 naming the field. */

/** A page holds this many actions unless `limit` asks for fewer (or more, up to MAX_PAGE). */
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;

/** The action key in the route: the form every key takes, or 400. */
export function routeKey(value: string | undefined): string {
  if (value === undefined || !IDEMPOTENCY_KEY_PATTERN.test(value))
    throw new InputError('key', `${quote(value ?? '')} is not an action key (<40 hex>.<kind>.<target>)`);
  return value;
}

/** `{ "reason": "…" }`: why the analyst decides so, required, one bounded text. */
export function decisionReason(body: unknown): string {
  const reason = Fields.of(body, '').requiredString('reason');
  if (reason.length > TEXT_LIMITS.reason) throw new InputError('reason', `is ${reason.length} characters: at most ${TEXT_LIMITS.reason}`);
  return reason;
}

/** The caller as the ledger records an analyst: the token's object id, and a name to show (an app's id when it has none). */
export function analystOf(caller: Caller | undefined): Analyst {
  if (!caller) throw new InputError('authorization', 'an analyst route needs a caller');
  return { objectId: caller.objectId, name: caller.name };
}

/** GET /api/actions's filters, each checked: state and kind by name, target as any identifier, incident by ARM id. */
export function listFilter(query: URLSearchParams): LedgerFilter {
  const filter: LedgerFilter = {};
  const state = query.get('state');
  if (state !== null) filter.state = oneOf('state', state, LEDGER_STATES) as LedgerState;
  const kind = query.get('kind');
  if (kind !== null) filter.kind = oneOf('kind', kind, ACTION_KINDS) as ActionKind;
  const target = query.get('target');
  if (target !== null) {
    if (target.trim() === '' || target.length > TEXT_LIMITS.upn)
      throw new InputError('target', `expected an identifier of at most ${TEXT_LIMITS.upn} characters`);
    filter.target = target.trim();
  }
  const incident = query.get('incident');
  if (incident !== null) {
    if (!parseIncidentArmId(incident)) throw new InputError('incident', `${quote(incident)} is not an incident ARM id`);
    filter.subject = incident.toLowerCase();
  }
  const since = query.get('since');
  if (since !== null) {
    const at = Date.parse(since);
    if (Number.isNaN(at) || since.length > 40) throw new InputError('since', `${quote(since)} is not an ISO 8601 date-time`);
    filter.since = new Date(at).toISOString();
  }
  return filter;
}

/** `limit`: 1 to MAX_PAGE, DEFAULT_PAGE when absent. */
export function pageSize(value: string | null): number {
  if (value === null) return DEFAULT_PAGE;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) throw new InputError('limit', `expected a whole number from 1 to ${MAX_PAGE}, got ${quote(value)}`);
  return n;
}

function oneOf(field: string, value: string, allowed: readonly string[]): string {
  const found = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (found === undefined) throw new InputError(field, `${quote(value)} is not one of ${allowed.join(', ')}`);
  return found;
}
