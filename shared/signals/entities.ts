import { InputError, quote } from '../errors';
import { TEXT_LIMITS } from '../limits';
import type { AccountEntity, DeviceRiskLevel, Entity, HostEntity, OtherEntity } from './signal';
import { DEVICE_RISK_LEVELS } from './signal';
import {
  boundedText,
  describe,
  FieldLocation,
  FieldNames,
  isRecord,
  ItemLocation,
  recordOf,
  spelledAs,
  textOf,
  type FieldValues,
  type FieldValuesOf,
  type Location,
  type PathLocation,
} from './fields';
import { isDnsName, isGuid, isMdeDeviceId, isUpn, shortHostName } from './identifiers';
import { NameIndex } from './names';

// The fields read from entities, as Sentinel's entity schema names them (reference/sentinel.md), in any key casing. A
// field is added by adding its name to its kind's list and reading it by that name below.

/** Every entity: its kind (`kind` on incident entities, `Type` on alert entities), and where its fields are. */
const ENTITY = new FieldNames(['kind', 'type', 'properties', '$ref', '$id']);

/** An Account entity. */
const ACCOUNT = new FieldNames([
  'aadUserId',
  'accountName',
  'name',
  'upnSuffix',
  'userPrincipalName',
  'displayName',
  'friendlyName',
  'aadTenantId',
  'sid',
  'ntDomain',
  'additionalData',
]);
/** An Account entity's additionalData: alert entities may carry the object id there. */
const ACCOUNT_DATA = new FieldNames(['AadUserId']);

/** A Host entity. Its Defender fields may also sit in its additionalData (HOST_DATA), where Defender alerts put them. */
const HOST = new FieldNames([
  'MdatpDeviceId',
  'AadDeviceId',
  'FQDN',
  'RiskScore',
  'hostName',
  'dnsDomain',
  'netBiosName',
  'azureID',
  'osFamily',
  'additionalData',
]);
/** A Host entity's additionalData: read when the entity itself lacks one of these. */
const HOST_DATA = new FieldNames(['MdatpDeviceId', 'AadDeviceId', 'FQDN', 'RiskScore']);
type HostDataName = (typeof HOST_DATA.names)[number];

/** The property that identifies an entity of each other well-known kind (EntityTypes.json), first found wins. */
const VALUE_PROPERTIES: Record<string, string[]> = {
  Ip: ['address'],
  Url: ['url'],
  File: ['fileName', 'name'],
  FileHash: ['hashValue', 'value'],
  Mailbox: ['mailboxPrimaryAddress', 'upn'],
  MailMessage: ['internetMessageId', 'networkMessageId'],
  CloudApplication: ['name', 'appId'],
  Dns: ['domainName'],
  Process: ['commandLine', 'processId'],
  RegistryKey: ['key'],
  RegistryValue: ['name'],
  Malware: ['malwareName', 'name'],
  AzureResource: ['resourceId'],
  SecurityGroup: ['objectGuid', 'distinguishedName'],
  IoTDevice: ['deviceId'],
  SubmissionMail: ['submissionId'],
};
/** The same, by the kind's lower-case name. */
const VALUE_NAMES = new Map(Object.entries(VALUE_PROPERTIES).map(([kind, names]) => [kind.toLowerCase(), new FieldNames(names)]));
/** Kinds we do not know are named by their name. */
const ANY_VALUE = new FieldNames(['name', 'friendlyName']);
/**
 * Each known kind's lower-case name, from its usual spellings (incident entities say `Account`, alert entities
 * `account`): most entities' kinds are found without building a lower-cased copy.
 */
const KIND_NAMES = new NameIndex(['Account', 'Host', ...Object.keys(VALUE_PROPERTIES)].map((kind) => [kind, kind.toLowerCase()] as const));

/** What reading one list of entities gathers besides the entities: made for each list and passed down. */
interface ListNotes {
  /** Fields longer than their limits, and cut: `path (length characters)`. */
  cuts: string[];
  /** Fields that could not be read and identify no one (an aadTenantId), left out: why. */
  ignored: string[];
}

/** Where an entity's fields are, and where its additionalData's are, spelled out only for an error. */
interface EntityAt {
  fields: Location;
  data: Location;
}

/**
 * The entities of a list (`relatedEntities` of an incident, `Entities` of an alert), each read on its own: one that
 * cannot be read (a malformed id, no kind) is left out with a note naming where and why, and the others are still
 * contained. Entity fields come from what happens on endpoints, so one bad value must not stop a whole containment.
 */
export function parseEntities(raw: readonly unknown[], parent: Location, listName: string, cuts: string[], notes: string[]): Entity[] {
  const entities: Entity[] = [];
  const list: ListNotes = { cuts, ignored: [] };
  for (let i = 0; i < raw.length; i++) {
    const where = new ItemLocation(parent, listName, i);
    try {
      const entity = parseEntity(raw[i], where, list);
      if (entity) entities.push(entity);
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      notes.push(`${where.path} left out: ${error.message}`);
    }
  }
  for (const problem of list.ignored) notes.push(`ignored: ${problem}`);
  return entities;
}

/**
 * One entity on its own: the `Entity` of Sentinel's entity trigger, whose kind the playbook's trigger path names
 * (`/entity/Account`) rather than the entity, so `kind` stands in when the entity names none. Read as a list's entities
 * are: a malformed identifier is set aside in `malformed` (its actions are held), display text is cut and the cuts
 * added to `cuts`.
 */
export function parseSingleEntity(raw: unknown, where: PathLocation, kind: string | undefined, cuts: string[]): Entity {
  const entity = parseEntity(raw, where, { cuts, ignored: [] }, kind);
  if (entity === undefined) throw new InputError(where.path, 'a bare { "$ref" } points at an entity elsewhere: expected the entity itself');
  return entity;
}

/**
 * Entities as Sentinel sends them, in either spelling:
 * - incident `relatedEntities`: `{ kind: "Account", properties: { aadUserId, accountName, upnSuffix, additionalData } }`
 * - alert `Entities`: `{ "$id": "1", "Type": "account", "AadUserId": …, "UPNSuffix": … }` (properties inline)
 * Unknown kinds are carried as `other`; they never fail the parse (reference/sentinel.md).
 */
function parseEntity(raw: unknown, where: ItemLocation | PathLocation, list: ListNotes, givenKind?: string): Entity | undefined {
  if (!isRecord(raw)) throw new InputError(where.path, `expected an object, got ${describe(raw)}`);
  const entity = ENTITY.read(raw);
  const kind = entityKind(entity, where, givenKind);
  // An alert entity that is only a `$ref` points at an entity listed elsewhere in the same array.
  if (kind === undefined) return undefined;
  const properties = recordOf(entity.properties, where, 'properties');
  const fields = properties ?? raw;
  const fieldsAt = properties ? new FieldLocation(where, 'properties') : where;
  const at: EntityAt = { fields: fieldsAt, data: new FieldLocation(fieldsAt, 'additionalData') };
  switch (kind) {
    case 'account':
      return parseAccount(fields, at, list);
    case 'host':
      return parseHost(fields, at, list);
    default:
      return parseOther(kind, fields, where, at.fields, list);
  }
}

/** The entity's kind (else `givenKind`), lower-cased; undefined for a bare `{ "$ref": … }`. */
function entityKind(entity: FieldValuesOf<typeof ENTITY>, at: Location, givenKind?: string): string | undefined {
  // Incident entities carry `type: "Microsoft.SecurityInsights/Entities"` next to `kind`; alert entities carry `Type`.
  const own = textOf(entity.kind, at, 'kind') ?? textOf(entity.type, at, 'type');
  const kind = own !== undefined && !own.includes('/') ? own : givenKind;
  if (kind !== undefined) return KIND_NAMES.get(kind, false) ?? kind.toLowerCase();
  if (entity.$ref !== undefined && entity.$id === undefined) return undefined;
  throw new InputError(at.at('kind'), 'every entity needs a kind (Account, Host, Ip, …)');
}

/** The fields `names` reads from an entity's `additionalData` object; undefined when it has none. */
function additionalData<N extends string>(value: unknown, names: FieldNames<N>, at: Location): FieldValues<N> | undefined {
  const record = recordOf(value, at, 'additionalData');
  return record && names.read(record);
}

function parseAccount(props: Record<string, unknown>, { fields: at, data }: EntityAt, { cuts, ignored }: ListNotes): AccountEntity {
  const fields = ACCOUNT.read(props);
  const extra = additionalData(fields.additionalData, ACCOUNT_DATA, at);
  // A malformed identifier does not drop the entity: its other identifiers still name it, and its actions are held.
  const malformed: string[] = [];
  const aadUserId = readable(() => guid(fields.aadUserId, at, 'aadUserId') ?? (extra ? guid(extra.AadUserId, data, 'AadUserId') : undefined), malformed);
  const accountNameField = fields.accountName === undefined || fields.accountName === null ? 'name' : 'accountName';
  // Windows spells an on-premises account `CONTOSO\jsmith`: the name is after the backslash, the domain before it.
  const { domain: domainOfName, name: accountNameText } = splitDomain(textOf(fields.accountName, at, 'accountName') ?? textOf(fields.name, at, 'name'));
  const upnSuffixText = textOf(fields.upnSuffix, at, 'upnSuffix');
  // The UPN is built from the text as sent and then validated (at most 320 characters): never from a cut copy.
  const upnText = accountNameText?.includes('@')
    ? accountNameText
    : accountNameText && upnSuffixText
      ? `${accountNameText}@${upnSuffixText}`
      : textOf(fields.userPrincipalName, at, 'userPrincipalName');
  const upn = upnText && isUpn(upnText) ? upnText.toLowerCase() : undefined;
  const accountName = boundedText(accountNameText, at, accountNameField, TEXT_LIMITS.upn, cuts);
  const upnSuffix = boundedText(upnSuffixText, at, 'upnSuffix', TEXT_LIMITS.hostName, cuts);
  const displayName =
    boundedText(textOf(fields.displayName, at, 'displayName'), at, 'displayName', TEXT_LIMITS.name, cuts) ??
    boundedText(textOf(fields.friendlyName, at, 'friendlyName'), at, 'friendlyName', TEXT_LIMITS.name, cuts);
  const aadTenantId = readable(() => guid(fields.aadTenantId, at, 'aadTenantId'), ignored);
  const sid = boundedText(textOf(fields.sid, at, 'sid'), at, 'sid', TEXT_LIMITS.name, cuts);
  const ntDomain = boundedText(textOf(fields.ntDomain, at, 'ntDomain') ?? domainOfName, at, 'ntDomain', TEXT_LIMITS.name, cuts);

  // Only the fields present, in one order: entities are compared and serialized, and objects built alike share a shape.
  const account: AccountEntity = { kind: 'account' };
  if (aadUserId !== undefined) account.aadUserId = aadUserId;
  if (upn !== undefined) account.upn = upn;
  if (accountName !== undefined) account.accountName = accountName;
  if (upnSuffix !== undefined) account.upnSuffix = upnSuffix;
  if (displayName !== undefined) account.displayName = displayName;
  if (aadTenantId !== undefined) account.aadTenantId = aadTenantId;
  if (sid !== undefined) account.sid = sid;
  if (ntDomain !== undefined) account.ntDomain = ntDomain;
  if (malformed.length > 0) account.malformed = malformed.join('; ');
  return account;
}

function parseHost(props: Record<string, unknown>, { fields: at, data }: EntityAt, { cuts }: ListNotes): HostEntity {
  const fields = HOST.read(props);
  const extra = additionalData(fields.additionalData, HOST_DATA, at);
  const malformed: string[] = [];
  const mdatp = readable(() => deviceId(fields, extra, 'MdatpDeviceId', at, data), malformed);
  const aadDeviceId = readable(() => deviceId(fields, extra, 'AadDeviceId', at, data), malformed);
  const hostNameText = textOf(fields.hostName, at, 'hostName');
  const dnsDomainText = textOf(fields.dnsDomain, at, 'dnsDomain');
  // A domain without a dot (`CONTOSO`) is a NetBIOS domain, not a DNS suffix: it makes no FQDN.
  const fqdnText =
    ownOrData(fields, extra, 'FQDN', at, data) ??
    (hostNameText?.includes('.') ? hostNameText : hostNameText && dnsDomainText?.includes('.') ? `${hostNameText}.${dnsDomainText}` : undefined);
  // A name that is not a DNS name (at most 253 characters) is kept, cut, for display, but never used to find a device.
  // `wks-042.contoso.com.` (rooted) is wks-042.contoso.com.
  const fqdnBare = fqdnText?.endsWith('.') ? fqdnText.slice(0, -1) : fqdnText;
  const fqdn = fqdnBare && isDnsName(fqdnBare) ? fqdnBare.toLowerCase() : undefined;
  const hostName = boundedText(hostNameText, at, 'hostName', TEXT_LIMITS.hostName, cuts);
  const dnsDomain = boundedText(dnsDomainText, at, 'dnsDomain', TEXT_LIMITS.hostName, cuts);
  const netBiosName = boundedText(textOf(fields.netBiosName, at, 'netBiosName'), at, 'netBiosName', TEXT_LIMITS.name, cuts);
  const azureId = boundedText(textOf(fields.azureID, at, 'azureID'), at, 'azureID', TEXT_LIMITS.resource, cuts);
  const osFamily = boundedText(textOf(fields.osFamily, at, 'osFamily'), at, 'osFamily', TEXT_LIMITS.name, cuts);
  const risk = deviceRisk(ownOrData(fields, extra, 'RiskScore', at, data));

  const host: HostEntity = { kind: 'host' };
  if (mdatp !== undefined) host.mdatpDeviceId = mdatp;
  if (aadDeviceId !== undefined) host.aadDeviceId = aadDeviceId;
  if (fqdn !== undefined) host.fqdn = fqdn;
  if (hostName !== undefined) host.hostName = hostName;
  if (dnsDomain !== undefined) host.dnsDomain = dnsDomain;
  if (netBiosName !== undefined) host.netBiosName = netBiosName;
  if (azureId !== undefined) host.azureId = azureId;
  if (osFamily !== undefined) host.osFamily = osFamily;
  if (risk !== undefined) host.deviceRisk = risk;
  if (malformed.length > 0) host.malformed = malformed.join('; ');
  return host;
}

/** A Defender field of a host from the entity itself first; its additionalData fills the gap. */
function ownOrData(
  fields: FieldValuesOf<typeof HOST>,
  extra: FieldValuesOf<typeof HOST_DATA> | undefined,
  name: HostDataName,
  at: Location,
  data: Location,
): string | undefined {
  return textOf(fields[name], at, name) ?? (extra && textOf(extra[name], data, name));
}

/** How each device id is checked, and what its error says. */
const DEVICE_IDS = {
  MdatpDeviceId: { valid: isMdeDeviceId, expected: 'a Defender device id is 40 hexadecimal characters' },
  AadDeviceId: { valid: isGuid, expected: 'expected a GUID' },
} as const;

/**
 * The Defender device id or the Entra device id, lower-cased, from the entity or its additionalData; a malformed one
 * is refused at the place it was read, which is where the sender has to look.
 */
function deviceId(
  fields: FieldValuesOf<typeof HOST>,
  extra: FieldValuesOf<typeof HOST_DATA> | undefined,
  name: keyof typeof DEVICE_IDS,
  at: Location,
  data: Location,
): string | undefined {
  const own = textOf(fields[name], at, name);
  const id = own ?? (extra && textOf(extra[name], data, name));
  if (id === undefined) return undefined;
  const { valid, expected } = DEVICE_IDS[name];
  if (!valid(id)) throw new InputError((own === undefined ? data : at).at(name), `${expected}, got ${quote(id)}`);
  return id.toLowerCase();
}

function parseOther(sourceKind: string, props: Record<string, unknown>, entityAt: Location, at: Location, { cuts }: ListNotes): OtherEntity {
  const value = firstValue(props, VALUE_NAMES.get(sourceKind) ?? ANY_VALUE);
  const kind = boundedText(sourceKind, entityAt, 'kind', TEXT_LIMITS.name, cuts);
  return value === undefined
    ? { kind: 'other', sourceKind: kind, properties: props }
    : { kind: 'other', sourceKind: kind, value: boundedText(String(value), at, 'value', TEXT_LIMITS.resource, cuts), properties: props };
}

/** The first of the kind's value properties, in the order listed, that holds text or a number. */
function firstValue(props: Record<string, unknown>, names: FieldNames<string>): string | number | undefined {
  const values = names.read(props);
  for (const name of names.names) {
    const value = values[name];
    if (typeof value === 'string' || typeof value === 'number') return value;
  }
  return undefined;
}

/** `CONTOSO\jsmith` -> domain `CONTOSO`, name `jsmith`; a name without a backslash has no domain. */
function splitDomain(text: string | undefined): { domain: string | undefined; name: string | undefined } {
  const slash = text?.lastIndexOf('\\') ?? -1;
  if (text === undefined || slash === -1) return { domain: undefined, name: text };
  return { domain: text.slice(0, slash) || undefined, name: text.slice(slash + 1) || undefined };
}

/** What `read` returns, or undefined with the reason in `problems` when the field cannot be read. */
function readable<T>(read: () => T, problems: string[]): T | undefined {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    problems.push(error.message);
    return undefined;
  }
}

function guid(value: unknown, at: Location, name: string): string | undefined {
  const text = textOf(value, at, name);
  if (text === undefined) return undefined;
  if (!isGuid(text)) throw new InputError(at.at(name), `expected a GUID, got ${quote(text)}`);
  return text.toLowerCase();
}

const deviceRiskLevel = spelledAs(DEVICE_RISK_LEVELS);

function deviceRisk(value: string | undefined): DeviceRiskLevel | undefined {
  return value === undefined ? undefined : deviceRiskLevel(value);
}

/**
 * The identifier two mentions of one entity share, lower-cased: the strongest present (accounts by object id then
 * UPN; hosts by Defender id, Entra device id, FQDN; other kinds by their value); undefined when there is none.
 */
export function identifierOf(entity: Entity): string | undefined {
  switch (entity.kind) {
    case 'account':
      return entity.aadUserId ?? entity.upn;
    case 'host':
      return entity.mdatpDeviceId ?? entity.aadDeviceId ?? entity.fqdn;
    default:
      return entity.value?.toLowerCase();
  }
}

/**
 * Merge repeated mentions of one entity (alerts repeat them; incident updates add detail): the first mention wins
 * each field, later ones fill the gaps.
 */
export function mergeEntities(entities: Entity[], notes: string[]): Entity[] {
  // Keyed by the identifier itself, no string built per entity; mentions of other kinds with an equal identifier (an
  // Entra device id equal to a user's object id) sit in the same slot's list and are told apart by kind.
  const byId = new Map<string, Entity[]>();
  const merged: Entity[] = [];
  for (const entity of entities) {
    const id = identifierOf(entity);
    if (id === undefined) {
      if (entity.kind !== 'other') {
        notes.push(`${entity.kind} entity without a usable identifier (no object id, UPN, device id or FQDN): no action can target it`);
      }
      merged.push(entity);
      continue;
    }
    const same = byId.get(id);
    const existing = same?.find((e) => sameKind(e, entity));
    if (existing) {
      addMention(existing, entity);
      continue;
    }
    if (same) same.push(entity);
    else byId.set(id, [entity]);
    merged.push(entity);
  }
  return merged;
}

/**
 * A later mention of an entity, added to its first (of the same kind): it fills the first's gaps, and when it names the
 * entity differently, it is kept in sight so that the first cannot hide it.
 */
function addMention(first: Entity, later: Entity): void {
  if (first.kind === 'account' && later.kind === 'account') {
    const differs = namedDifferently(first, later, ACCOUNT_NAMES);
    fillGaps(first, later);
    if (differs) (first.otherMentions ??= []).push(namesGiven(later, ACCOUNT_NAMES));
  } else if (first.kind === 'host' && later.kind === 'host') {
    const differs = namedDifferently(first, later, HOST_NAMES);
    fillGaps(first, later);
    if (differs) (first.otherMentions ??= []).push(namesGiven(later, HOST_NAMES));
  } else {
    fillGaps(first, later);
  }
}

/** Every field the first mention has stays as it is; those it lacks come from the later one. */
function fillGaps(first: Entity, later: Entity): void {
  Object.assign(first, { ...later, ...first });
}

/** The fields that say who an entity is: mentions of one entity must agree on them. */
const ACCOUNT_NAMES = ['aadUserId', 'upn', 'accountName', 'sid'] as const;
const HOST_NAMES = ['mdatpDeviceId', 'aadDeviceId', 'fqdn', 'hostName', 'netBiosName'] as const;

/** Whether two mentions give the entity a different value for one of `names` (a name only one of them gives is a gap). */
function namedDifferently<E extends AccountEntity | HostEntity, K extends keyof E & string>(first: E, later: E, names: readonly K[]): boolean {
  return names.some((name) => {
    const a = first[name];
    const b = later[name];
    return typeof a === 'string' && typeof b === 'string' && !sameName(name, a, b);
  });
}

/** The values a mention gives for `names`, leaving out those it does not give. */
function namesGiven<E extends AccountEntity | HostEntity, K extends keyof E>(entity: E, names: readonly K[]): Partial<Pick<E, K>> {
  const given: Partial<Pick<E, K>> = {};
  for (const name of names) if (entity[name] !== undefined) given[name] = entity[name];
  return given;
}

/** Host names are compared by their first label (`WKS-042` is `wks-042.contoso.com`); everything else whole. */
function sameName(key: string, a: string, b: string): boolean {
  return key === 'hostName' || key === 'netBiosName' ? shortHostName(a) === shortHostName(b) : a.toLowerCase() === b.toLowerCase();
}

function sameKind(a: Entity, b: Entity): boolean {
  return a.kind === 'other' ? b.kind === 'other' && a.sourceKind === b.sourceKind : a.kind === b.kind;
}
