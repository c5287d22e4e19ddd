import type { Analyst } from './actions/approval';
import { ACTIONS, ISOLATION_TYPES, PLANNABLE_ACTIONS, ROLLBACK_ACTIONS, type PlannableActionKind } from './actions/catalogue';
import { ACTION_KINDS, type ActionKind } from './actions/catalogue';
import type { ManualRequest } from './engine';
import type { AccountEntity, HostEntity, IncidentRef } from './signals/signal';
import { IDEMPOTENCY_KEY_PATTERN } from './actions/idempotency';
import type { Caller } from './auth/caller';
import { InputError, quote } from './errors';
import { LEDGER_STATES, type LedgerFilter, type LedgerState } from './ledger/ledger';
import { TEXT_LIMITS } from './limits';
import { identifierOf, parseSingleEntity } from './signals/entities';
import { Fields, PathLocation } from './signals/fields';
import { isDnsName, isGuid, isMdeDeviceId, isUpn, parseIncidentArmId, shortHostName } from './signals/identifiers';
import { incidentRefOf } from './signals/sentinel';

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
    filter.incident = incident;
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

/**
 * POST /api/actions's body, `{ "kind", "target", "reason", "incident"?, "params"? }`: the kind tells the target's type
 * (a user's UPN or object id; a device's FQDN, Defender id or Entra device id). Or, from a playbook run on an entity,
 * `{ "kind", "entity", "reason"?, "params"? }` with the body of Sentinel's entity trigger (`entityTriggerTarget`).
 * Rollback kinds are asked for on the action they undo (/rollback), never here.
 */
export function actionRequest(body: unknown, analyst: Analyst): ManualRequest {
  const fields = Fields.of(body, '');
  const kindText = fields.requiredString('kind');
  if ((ROLLBACK_ACTIONS as readonly string[]).includes(kindText)) {
    throw new InputError('kind', `${kindText} undoes an action: ask for it with POST /api/actions/{key}/rollback on the action it undoes`);
  }
  const kind = oneOf('kind', kindText, PLANNABLE_ACTIONS) as PlannableActionKind;
  const step = { kind, params: actionParams(fields, kind) };
  const given = (name: string) => fields.get(name) !== undefined && fields.get(name) !== null;
  if (given('entity')) {
    if (given('target')) throw new InputError('entity', 'give target (an identifier) or entity (the entity trigger body), not both');
    if (given('incident')) throw new InputError('incident', "comes from the entity trigger body's IncidentArmID: leave it out");
    const { entity, incident } = entityTriggerTarget(fields, kind);
    // A Logic App has no reason to give unless the analyst typed one: a blank one is none.
    const reason =
      fields.string('reason') === undefined
        ? `requested from Sentinel's entity trigger ${incident ? `on ${incident.armId}` : 'outside an incident'}`
        : decisionReason(body);
    return { step, entity, reason, ...(incident && { incident }), by: analyst };
  }
  const reason = decisionReason(body);
  if (!given('target')) throw new InputError('target', 'is required: the identifier of the user or device to act on (or entity: the entity trigger body)');
  const targetText = fields.requiredString('target');
  const entity = ACTIONS[kind].target === 'user' ? userNamed(targetText) : deviceNamed(targetText);
  const incidentText = fields.string('incident');
  const incident = incidentText === undefined ? undefined : incidentRef('incident', incidentText);
  return { step, entity, reason, ...(incident && { incident }), by: analyst };
}

/**
 * The body Sentinel's entity trigger ("Microsoft Sentinel entity", a playbook run on an account or host) hands the
 * playbook, relayed as `entity`: `{ "Entity": { "properties": { "Name", "UPNSuffix", "AadUserId", … } },
 * "IncidentArmID": "/subscriptions/…/Incidents/…" }` (test/fixtures/entityTrigger names the sources). The entity is read
 * as incidents' and alerts' entities are, so its identifiers are checked alike. IncidentArmID is null or absent when
 * the playbook ran outside an incident (hunting, an entity page).
 */
function entityTriggerTarget(fields: Fields, kind: PlannableActionKind): { entity: AccountEntity | HostEntity; incident: IncidentRef | undefined } {
  const trigger = fields.object('entity');
  if (trigger === undefined) throw new InputError('entity', 'expected the entity trigger body');
  const targetType = ACTIONS[kind].target;
  // As the trigger names them (`/entity/Account`, `/entity/Host`).
  const [expected, other] = targetType === 'user' ? (['Account', 'Host'] as const) : (['Host', 'Account'] as const);
  const wrongType = (got: string) =>
    new InputError('entity', `${kind} acts on ${targetType === 'user' ? 'a user' : 'a device'}: expected an entity of type ${expected}, got ${quote(got)}`);
  const typeText = trigger.string('EntityType');
  if (typeText !== undefined && typeText.toLowerCase() !== expected.toLowerCase()) throw wrongType(typeText);
  const raw = trigger.get('Entity');
  if (raw === undefined || raw === null) throw new InputError(trigger.at('Entity'), 'is required: the entity the playbook was run on');
  const at = new PathLocation(trigger.at('Entity'));
  // The trigger's entity need not name its kind (the playbook's trigger path does): it is then read as the kind the
  // action needs. Display text it brings is cut to its limits; a manual request carries no notes to report cuts in.
  const entity = parseSingleEntity(raw, at, expected, []);
  if (entity.kind === 'other') throw wrongType(entity.sourceKind ?? 'unknown');
  if (entity.kind !== expected.toLowerCase()) throw wrongType(entity.kind === 'account' ? 'Account' : 'Host');
  if (identifierOf(entity) === undefined) {
    // Read as the other kind, an entity that then names someone is that kind: a host sent for a user action.
    const asOther = typeText === undefined ? parseSingleEntity(raw, at, other, []) : undefined;
    if (asOther !== undefined && asOther.kind === other.toLowerCase() && identifierOf(asOther) !== undefined) throw wrongType(other);
    const needs =
      targetType === 'user' ? 'an Entra object id (AadUserId) or a UPN (Name and UPNSuffix)' : 'a Defender id, an Entra device id or a fully qualified name';
    throw new InputError(at.path, `names no one the engine can find: it needs ${needs}${entity.malformed ? ` (${entity.malformed})` : ''}`);
  }
  const armId = trigger.string('IncidentArmID');
  return { entity, incident: armId === undefined ? undefined : incidentRef(trigger.at('IncidentArmID'), armId) };
}

function userNamed(text: string): AccountEntity {
  if (text.length > TEXT_LIMITS.upn) throw new InputError('target', `is ${text.length} characters: a UPN has at most ${TEXT_LIMITS.upn}`);
  if (isGuid(text)) return { kind: 'account', aadUserId: text.toLowerCase() };
  if (isUpn(text)) return { kind: 'account', upn: text.toLowerCase() };
  throw new InputError('target', `${quote(text)} is not a user: expected a UPN (name@domain) or an Entra object id`);
}

function deviceNamed(text: string): HostEntity {
  if (text.length > TEXT_LIMITS.hostName) throw new InputError('target', `is ${text.length} characters: a device name has at most ${TEXT_LIMITS.hostName}`);
  if (isMdeDeviceId(text)) return { kind: 'host', mdatpDeviceId: text.toLowerCase() };
  if (isGuid(text)) return { kind: 'host', aadDeviceId: text.toLowerCase() };
  if (isDnsName(text) && text.includes('.')) return { kind: 'host', fqdn: text.toLowerCase(), hostName: shortHostName(text) };
  throw new InputError('target', `${quote(text)} is not a device: expected a fully qualified name, a Defender id (40 hex) or an Entra device id`);
}

function incidentRef(field: string, armId: string): IncidentRef {
  const ref = incidentRefOf(armId);
  if (!ref) throw new InputError(field, `${quote(armId)} is not an incident ARM id`);
  return ref;
}

/** `params`: only what the kind takes (isolateDevice's isolationType), checked. */
function actionParams(fields: Fields, kind: PlannableActionKind): ManualRequest['step']['params'] {
  const params = fields.object('params');
  if (params === undefined) return { ...ACTIONS[kind].defaults };
  const isolationType = params.string('isolationType');
  const other = Object.keys((fields.get('params') ?? {}) as object).filter((name) => name.toLowerCase() !== 'isolationtype');
  if (other.length > 0 || (isolationType !== undefined && kind !== 'isolateDevice')) {
    throw new InputError('params', `${kind} takes ${kind === 'isolateDevice' ? 'only isolationType' : 'no parameters'}`);
  }
  if (isolationType === undefined) return { ...ACTIONS[kind].defaults };
  return { isolationType: oneOf('params.isolationType', isolationType, ISOLATION_TYPES) as (typeof ISOLATION_TYPES)[number] };
}
