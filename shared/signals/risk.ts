import { InputError, quote } from '../errors';
import { cut, TEXT_LIMITS } from '../limits';
import {
  boundedText,
  describe,
  FieldNames,
  isRecord,
  ItemLocation,
  noteCuts,
  PathLocation,
  recordOf,
  requiredTextOf,
  spelledAs,
  textOf,
  type Location,
} from './fields';
import { isGuid, isUpn } from './identifiers';
import type { AccountEntity, RiskRef, Severity, Signal, UserRiskLevel } from './signal';
import { USER_RISK_LEVELS } from './signal';

/**
 * Entra ID Protection's risk logs as its diagnostic settings stream them to an Event Hub (reference/idprotection.md):
 * each event body is `{ "records": [ { "time", "category", "operationName", "tenantId", "properties": { … } } ] }`, the
 * properties shaped as Graph's riskyUser (`RiskyUsers`) and riskDetection (`UserRiskEvents`). The same bodies come over
 * HTTP (POST /api/risk-events). Each record is judged alone: one bad record is reported, and the others still count.
 */
export const RISK_CATEGORIES = ['RiskyUsers', 'UserRiskEvents', 'RiskyServicePrincipals', 'ServicePrincipalRiskEvents'] as const;
export type RiskCategory = (typeof RISK_CATEGORIES)[number];

/** riskyUser.riskState and riskDetection.riskState (Graph riskState enum). */
export const RISK_STATES = ['none', 'confirmedSafe', 'remediated', 'dismissed', 'atRisk', 'confirmedCompromised', 'unknownFutureValue'] as const;
export type RiskState = (typeof RISK_STATES)[number];

/** The states that ask for action; every other state (dismissed, remediated, confirmedSafe, none) decides nothing. */
const ACTIONABLE_STATES: ReadonlySet<RiskState> = new Set(['atRisk', 'confirmedCompromised']);

/** Records one request may carry: a diagnostic-settings event holds a few hundred at most. */
export const MAX_RISK_RECORDS = 500;

/** The product a risk signal names, as Sentinel's alerts from ID Protection do. */
export const ID_PROTECTION_PRODUCT = 'Azure Active Directory Identity Protection';

/** What became of one record: a signal to decide on, a record that asks for nothing (and why), or one that is unreadable. */
export type RiskRecord =
  | { index: number; category: RiskCategory; status: 'signal'; signal: Signal }
  | { index: number; category: RiskCategory | string; status: 'ignored'; reason: string }
  | { index: number; status: 'invalid'; field: string; problem: string };

const BODY = new FieldNames(['records']);
const RECORD = new FieldNames(['time', 'category', 'operationName', 'tenantId', 'properties']);
/** Graph riskyUser, as the RiskyUsers category streams it. */
const RISKY_USER = new FieldNames([
  'id',
  'userPrincipalName',
  'userDisplayName',
  'riskLevel',
  'riskState',
  'riskDetail',
  'riskLastUpdatedDateTime',
  'isDeleted',
  'isProcessing',
]);
/** Graph riskDetection, as the UserRiskEvents category streams it. */
const RISK_DETECTION = new FieldNames([
  'id',
  'userId',
  'userPrincipalName',
  'userDisplayName',
  'riskEventType',
  'riskLevel',
  'riskState',
  'riskDetail',
  'detectionTimingType',
  'detectedDateTime',
  'activityDateTime',
  'ipAddress',
]);

const categoryOf = spelledAs(RISK_CATEGORIES);
const riskStateOf = spelledAs(RISK_STATES);
const riskLevelOf = spelledAs(USER_RISK_LEVELS);

/**
 * The records of one Event Hub event or one POST /api/risk-events body. A body that is not `{ "records": [ … ] }`
 * throws InputError (400); a record that cannot be read is reported `invalid` with the field at fault.
 */
export function normalizeRiskRecords(body: unknown): RiskRecord[] {
  if (!isRecord(body)) throw new InputError('', `expected a JSON object { "records": [ … ] }, got ${describe(body)}`);
  const { records } = BODY.read(body);
  if (records === undefined || records === null)
    throw new InputError('records', 'is required: the body is { "records": [ … ] }, as diagnostic settings stream it');
  if (!Array.isArray(records)) throw new InputError('records', `expected an array of ID Protection log records, got ${describe(records)}`);
  if (records.length > MAX_RISK_RECORDS) throw new InputError('records', `at most ${MAX_RISK_RECORDS} records per request, got ${records.length}`);
  const list = new PathLocation('');
  return records.map((record, index) => {
    try {
      return normalizeRecord(record, new ItemLocation(list, 'records', index), index);
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      return { index, status: 'invalid', field: error.path, problem: error.problem };
    }
  });
}

function normalizeRecord(value: unknown, at: ItemLocation, index: number): RiskRecord {
  if (!isRecord(value)) throw new InputError(at.path, `expected a log record (an object), got ${describe(value)}`);
  const record = RECORD.read(value);
  const categoryText = requiredTextOf(record.category, at, 'category');
  const category = categoryOf(categoryText);
  if (category === undefined)
    return { index, category: cutName(categoryText), status: 'ignored', reason: `category ${quote(categoryText)} is not an ID Protection risk log` };
  if (category === 'RiskyServicePrincipals' || category === 'ServicePrincipalRiskEvents') {
    return {
      index,
      category,
      status: 'ignored',
      reason: 'service principal risk: the engine has no action on service principals; Sentinel analytics see it in AADRiskyServicePrincipals',
    };
  }
  const props = recordOf(record.properties, at, 'properties');
  if (props === undefined) throw new InputError(at.at('properties'), 'is required');
  const where = new PathLocation(at.at('properties'));
  const read = category === 'RiskyUsers' ? riskyUser(props, where, record.time, at) : riskDetection(props, where, record.time, at);
  read.signal.risk = riskRefOf(category, category === 'RiskyUsers' ? RISKY_USER : RISK_DETECTION, props, record.time);
  if (!ACTIONABLE_STATES.has(read.state as RiskState))
    return { index, category, status: 'ignored', reason: `risk state ${read.state}: only atRisk and confirmedCompromised ask for action` };
  if (read.deleted) return { index, category, status: 'ignored', reason: 'the user is deleted' };
  return { index, category, status: 'signal', signal: read.signal };
}

/**
 * The record as the signal's reference: only the fields read, each string cut well above what the normalizer keeps of
 * it, so that reading the reference again gives the same signal, and a look's message stays small.
 */
function riskRefOf(category: RiskRef['category'], names: FieldNames<string>, props: Record<string, unknown>, time: unknown): RiskRef {
  const properties: Record<string, string | boolean> = {};
  for (const [name, value] of Object.entries(names.read(props))) {
    if (typeof value === 'string') properties[name] = cut(value, REF_TEXT_LIMIT);
    else if (typeof value === 'boolean') properties[name] = value;
  }
  return { category, ...(typeof time === 'string' && { time: cut(time, REF_TEXT_LIMIT) }), properties };
}
const REF_TEXT_LIMIT = 2 * TEXT_LIMITS.upn;

/** One record read into a signal, with what decides whether it asks for anything. */
interface ReadRecord {
  state: RiskState | string;
  deleted: boolean;
  signal: Signal;
}

/**
 * A riskyUser record: the user's risk as it stands. Its subject is the user and the moment their risk last changed,
 * so the same change seen twice (a redelivered event, the riskyUsers sweep reading Graph) acts once, and a later
 * change (at risk again after remediation) is a subject of its own.
 */
function riskyUser(props: Record<string, unknown>, at: Location, time: unknown, recordAt: Location): ReadRecord {
  const fields = RISKY_USER.read(props);
  const userId = objectId(fields.id, at, 'id');
  const state = stateOf(fields.riskState, at);
  const level = levelOf(fields.riskLevel, at);
  const changed = dateOf(fields.riskLastUpdatedDateTime, at, 'riskLastUpdatedDateTime') ?? requiredDate(time, recordAt, 'time');
  const cuts: string[] = [];
  const account = accountOf(userId, fields.userPrincipalName, fields.userDisplayName, at, cuts);
  if (level !== undefined) account.userRisk = level;
  const detail = boundedText(textOf(fields.riskDetail, at, 'riskDetail'), at, 'riskDetail', TEXT_LIMITS.name, cuts);
  return {
    state,
    deleted: fields.isDeleted === true,
    signal: {
      source: 'risk',
      subject: `risk:user:${userId}:${state}:${changed}`,
      title: `ID Protection: ${account.upn ?? userId} is ${state === 'atRisk' ? 'at risk' : 'confirmed compromised'} (${level ?? 'risk level unknown'})`,
      severity: severityOf(level),
      status: state,
      tactics: [],
      techniques: [],
      products: [ID_PROTECTION_PRODUCT],
      labels: [],
      entities: [account],
      notes: withCuts(detail ? [`risk detail: ${detail}`] : [], cuts),
    },
  };
}

/**
 * A riskDetection record: one detection (leaked credentials, an anonymous IP, …). Its level is the detection's, not the
 * user's: the user's risk is left for enrichment to read. Its subject is the detection and its state; its type is a
 * label rules can match (`labels: [leakedCredentials]`).
 */
function riskDetection(props: Record<string, unknown>, at: Location, time: unknown, recordAt: Location): ReadRecord {
  const fields = RISK_DETECTION.read(props);
  const detectionId = textOf(fields.id, at, 'id');
  if (detectionId === undefined) throw new InputError(at.at('id'), 'is required (the detection id)');
  if (!/^[A-Za-z0-9-]{1,128}$/.test(detectionId))
    throw new InputError(at.at('id'), `expected a detection id (letters, digits and "-"), got ${quote(detectionId)}`);
  const userId = objectId(fields.userId, at, 'userId');
  const state = stateOf(fields.riskState, at);
  const level = levelOf(fields.riskLevel, at);
  // Required so the record can be told from a forged or truncated one; its value only dates the detection.
  if (dateOf(fields.detectedDateTime, at, 'detectedDateTime') === undefined) requiredDate(time, recordAt, 'time');
  const cuts: string[] = [];
  const account = accountOf(userId, fields.userPrincipalName, fields.userDisplayName, at, cuts);
  // One type per detection (Graph's riskEventType is a string): a list would let a record carry any number of labels.
  const type = boundedText(textOf(fields.riskEventType, at, 'riskEventType'), at, 'riskEventType', TEXT_LIMITS.name, cuts);
  const types = type === undefined ? [] : [type];
  const timing = boundedText(textOf(fields.detectionTimingType, at, 'detectionTimingType'), at, 'detectionTimingType', TEXT_LIMITS.name, cuts);
  const ip = boundedText(textOf(fields.ipAddress, at, 'ipAddress'), at, 'ipAddress', TEXT_LIMITS.name, cuts);
  return {
    state,
    deleted: false,
    signal: {
      source: 'risk',
      subject: `risk:detection:${detectionId.toLowerCase()}:${state}`,
      title: `ID Protection detection${types.length ? ` ${types.join(', ')}` : ''} for ${account.upn ?? userId} (${level ?? 'risk level unknown'})`,
      severity: severityOf(level),
      status: state,
      tactics: [],
      techniques: [],
      products: [ID_PROTECTION_PRODUCT],
      labels: types,
      entities: [account],
      notes: withCuts([...(timing ? [`detected ${timing}`] : []), ...(ip ? [`from ${ip}`] : [])], cuts),
    },
  };
}

/** The user a record names, by object id (the directory says who it is); the UPN and name are for display. */
function accountOf(userId: string, upnValue: unknown, nameValue: unknown, at: Location, cuts: string[]): AccountEntity {
  const account: AccountEntity = { kind: 'account', aadUserId: userId };
  const upnText = textOf(upnValue, at, 'userPrincipalName');
  if (upnText !== undefined && isUpn(upnText)) account.upn = upnText.toLowerCase();
  const displayName = boundedText(textOf(nameValue, at, 'userDisplayName'), at, 'userDisplayName', TEXT_LIMITS.name, cuts);
  if (displayName !== undefined) account.displayName = displayName;
  return account;
}

function objectId(value: unknown, at: Location, name: string): string {
  const text = textOf(value, at, name);
  if (text === undefined) throw new InputError(at.at(name), "is required (the user's Entra object id)");
  if (!isGuid(text)) throw new InputError(at.at(name), `expected the user's Entra object id (a GUID), got ${quote(text)}`);
  return text.toLowerCase();
}

/**
 * The record's risk state. Graph's enums grow (`unknownFutureValue`): a state the engine does not know is kept as sent
 * (bounded), and asks for nothing.
 */
function stateOf(value: unknown, at: Location): RiskState | string {
  const text = requiredTextOf(value, at, 'riskState');
  return riskStateOf(text) ?? boundedText(text, at, 'riskState', TEXT_LIMITS.name, []);
}

/** The record's risk level; undefined for one the policy has no name for (the rules' userRisk conditions then fail). */
function levelOf(value: unknown, at: Location): UserRiskLevel | undefined {
  return riskLevelOf(requiredTextOf(value, at, 'riskLevel'));
}

/**
 * A date as ISO 8601 to the millisecond, however the source wrote it, so the subject does not change with the format.
 * The stream writes hours 0-9 with one digit (`2026-11-28T9:14:03.512Z`, which Date.parse refuses) and the envelope's
 * `time` US-style without a zone (`11/28/2026 9:14:03 AM`, read as UTC): test/fixtures/risk/NOTES.md.
 */
function dateOf(value: unknown, at: Location, name: string): string | undefined {
  const text = textOf(value, at, name);
  if (text === undefined) return undefined;
  const ms = text.length <= 64 ? parseDate(text) : Number.NaN;
  if (Number.isNaN(ms)) throw new InputError(at.at(name), `expected a date and time (ISO 8601), got ${quote(text)}`);
  return new Date(ms).toISOString();
}

const ONE_DIGIT_HOUR = /^(\d{4}-\d{2}-\d{2}T)(\d:)/;
/** ISO 8601 as the stream and Graph write it: a date and a time (the hour in one or two digits), a zone or none. */
const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T\d{1,2}:\d{2}:\d{2}(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?$/;
const US_DATE_TIME = /^(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):(\d{2}):(\d{2}) ([AP]M)$/i;

function parseDate(text: string): number {
  const iso = ISO_DATE_TIME.exec(text);
  if (iso) {
    // Date.parse rolls 30 February into March, and reads a time without a zone in the host's: so the subject would change.
    if (!isCalendarDay(Number(iso[1]), Number(iso[2]), Number(iso[3]))) return Number.NaN;
    return Date.parse(`${text.replace(ONE_DIGIT_HOUR, (_, date: string, hour: string) => `${date}0${hour}`)}${iso[4] === undefined ? 'Z' : ''}`);
  }
  const us = US_DATE_TIME.exec(text);
  if (!us) return Number.NaN;
  const [month, day, year, hour, minute, second] = us.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (!isCalendarDay(year, month, day) || hour < 1 || hour > 12 || minute > 59 || second > 59) return Number.NaN;
  const afternoon = us[7]?.toUpperCase() === 'PM';
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // Date.UTC would take year 26 for 1926
  return date.setUTCHours((hour % 12) + (afternoon ? 12 : 0), minute, second);
}

/** Whether the month has that day. */
function isCalendarDay(year: number, month: number, day: number): boolean {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

function requiredDate(value: unknown, at: Location, name: string): string {
  const date = dateOf(value, at, name);
  if (date === undefined) throw new InputError(at.at(name), 'is required');
  return date;
}

/** ID Protection's levels as the severities the policy reads. */
function severityOf(level: UserRiskLevel | undefined): Severity {
  return level === 'high' ? 'High' : level === 'medium' ? 'Medium' : level === 'low' ? 'Low' : 'Informational';
}

function withCuts(notes: string[], cuts: string[]): string[] {
  noteCuts(cuts, notes);
  return notes;
}

/** An unknown category, kept short in the answer. */
function cutName(text: string): string {
  return boundedText(text, new PathLocation(''), 'category', TEXT_LIMITS.name, []);
}

/** The signal a risk reference reads as again, if it is still the risk `subject` names; else InputError. */
export function riskSignalOf(ref: RiskRef, subject: string): Signal {
  const [read] = normalizeRiskRecords({ records: [{ category: ref.category, time: ref.time, properties: ref.properties }] });
  if (read?.status === 'invalid') throw new InputError(`record.${read.field}`, read.problem);
  if (read?.status !== 'signal') throw new InputError('record', `no longer asks for action: ${read?.status === 'ignored' ? read.reason : 'nothing read'}`);
  if (read.signal.subject !== subject) throw new InputError('record', `reads as ${read.signal.subject}, not ${subject}`);
  return read.signal;
}
