import { InputError, quote } from '../errors';
import { TEXT_LIMITS } from '../limits';
import type { AccountEntity, DeviceRiskLevel, Entity, HostEntity, OtherEntity } from './signal';
import { DEVICE_RISK_LEVELS } from './signal';
import { boundedText, describe, FieldTable, isRecord, spelledAs, textOf, type Location } from './fields';
import { isDnsName, isGuid, isMdeDeviceId, isUpn, shortHostName } from './identifiers';
import { NameIndex } from './names';

/** The fields read from each kind of entity object, found in one pass over its keys. */
const OUTER = new FieldTable(['kind', 'type', 'properties', '$ref', '$id']);
const ACCOUNT = new FieldTable([
  'additionalData',
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
]);
const ACCOUNT_EXTRA = new FieldTable(['AadUserId']);
/** Host identifiers and risk are read from the entity first, then from its additionalData. */
const HOST_SHARED = ['MdatpDeviceId', 'AadDeviceId', 'FQDN', 'RiskScore'] as const;
const HOST = new FieldTable([...HOST_SHARED, 'additionalData', 'hostName', 'dnsDomain', 'netBiosName', 'azureID', 'osFamily']);
const HOST_EXTRA = new FieldTable(HOST_SHARED);

/**
 * Where the entity being read sits, spelled out only for an error: `relatedEntities[3].properties.aadUserId`. One per
 * list, moved from entity to entity: parsing is synchronous, so an error always names the entity it is thrown for, and
 * a 200-entity incident does not build path objects it will almost never use.
 */
export class EntityCursor {
  index = 0;
  /** The entity object itself. */
  readonly entity: Location = new CursorLocation(this, '');
  /** Its fields and additionalData: under `properties` (incident entities) or inline (alert entities). */
  readonly nested: EntityAt = { fields: new CursorLocation(this, '.properties'), data: new CursorLocation(this, '.properties.additionalData') };
  readonly inline: EntityAt = { fields: this.entity, data: new CursorLocation(this, '.additionalData') };
  /** Fields of the list's entities that were longer than their limits, and cut: `path (length characters)`. */
  readonly cuts: string[] = [];
  /** Fields of the list's entities that could not be read and identify no one (an aadTenantId), left out: why. */
  readonly ignored: string[] = [];

  constructor(readonly list: string) {}

  /** The path of the current entity. */
  get path(): string {
    return `${this.list}[${this.index}]`;
  }
}

/** A place inside whichever entity the cursor is on. */
class CursorLocation implements Location {
  constructor(
    private readonly cursor: EntityCursor,
    private readonly suffix: string,
  ) {}

  at(name: string): string {
    return `${this.cursor.path}${this.suffix}.${name}`;
  }
}

/**
 * Entities as Sentinel sends them, in either spelling:
 * - incident `relatedEntities`: `{ kind: "Account", properties: { aadUserId, accountName, upnSuffix, additionalData } }`
 * - alert `Entities`: `{ "$id": "1", "Type": "account", "AadUserId": …, "UPNSuffix": … }` (properties inline)
 * Unknown kinds are carried as `other`; they never fail the parse (reference/sentinel.md). The cursor says which
 * entity of which list this is, for errors.
 */
export function parseEntity(raw: unknown, cursor: EntityCursor): Entity | undefined {
  if (!isRecord(raw)) throw new InputError(cursor.path, `expected an object, got ${describe(raw)}`);
  const outer = OUTER.read(raw);
  const kind = entityKind(outer, cursor.entity);
  // An alert entity that is only a `$ref` points at an entity listed elsewhere in the same array.
  if (kind === undefined) return undefined;
  const properties = outer[2];
  const nested = properties !== undefined && properties !== null;
  if (nested && !isRecord(properties)) throw new InputError(cursor.entity.at('properties'), `expected an object, got ${describe(properties)}`);
  const props = nested ? (properties as Record<string, unknown>) : raw;
  const at = nested ? cursor.nested : cursor.inline;
  switch (kind) {
    case 'account':
      return parseAccount(props, at, cursor.cuts, cursor.ignored);
    case 'host':
      return parseHost(props, at, cursor.cuts);
    default:
      return parseOther(kind, props, cursor.entity, at.fields, cursor.cuts);
  }
}

/** Where an entity's fields are, and where its additionalData's are. */
interface EntityAt {
  fields: Location;
  data: Location;
}

/** The entity's kind, lower-cased; undefined for a bare `{ "$ref": … }`. */
function entityKind(outer: unknown[], at: Location): string | undefined {
  // Incident entities carry `type: "Microsoft.SecurityInsights/Entities"` next to `kind`; alert entities carry `Type`.
  const kind = textOf(outer[0], at, 'kind') ?? textOf(outer[1], at, 'type');
  if (kind !== undefined && !kind.includes('/')) return KIND_NAMES.get(kind, false) ?? kind.toLowerCase();
  if (outer[3] !== undefined && outer[4] === undefined) return undefined;
  throw new InputError(at.at('kind'), 'every entity needs a kind (Account, Host, Ip, …)');
}

/** The fields of an entity's `additionalData` object, read with `table`; undefined when it has none. */
function additionalData(value: unknown, table: FieldTable<string>, at: Location): unknown[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw new InputError(at.at('additionalData'), `expected an object, got ${describe(value)}`);
  return table.read(value);
}

function parseAccount(props: Record<string, unknown>, { fields: at, data }: EntityAt, cuts: string[], ignored: string[]): AccountEntity {
  const [extraData, aadUserIdRaw, accountNameRaw, name, upnSuffixRaw, userPrincipalName, displayNameRaw, friendlyName, aadTenantIdRaw, sid, ntDomain] =
    ACCOUNT.read(props);
  const extra = additionalData(extraData, ACCOUNT_EXTRA, at);
  // A malformed identifier does not drop the entity: its other identifiers still name it, and its actions are held.
  const malformed: string[] = [];
  const aadUserId = readable(() => guid(aadUserIdRaw, at, 'aadUserId') ?? (extra ? guid(extra[0], data, 'AadUserId') : undefined), malformed);
  const accountNameField = accountNameRaw === undefined || accountNameRaw === null ? 'name' : 'accountName';
  // Windows spells an on-premises account `CONTOSO\jsmith`: the name is after the backslash, the domain before it.
  const [domainOfName, accountNameText] = splitDomain(textOf(accountNameRaw, at, 'accountName') ?? textOf(name, at, 'name'));
  const upnSuffixText = textOf(upnSuffixRaw, at, 'upnSuffix');
  // The UPN is built from the text as sent and then validated (at most 320 characters): never from a cut copy.
  const upnText = accountNameText?.includes('@')
    ? accountNameText
    : accountNameText && upnSuffixText
      ? `${accountNameText}@${upnSuffixText}`
      : textOf(userPrincipalName, at, 'userPrincipalName');
  const upn = upnText && isUpn(upnText) ? upnText.toLowerCase() : undefined;
  const accountName = boundedText(accountNameText, at, accountNameField, TEXT_LIMITS.upn, cuts);
  const upnSuffix = boundedText(upnSuffixText, at, 'upnSuffix', TEXT_LIMITS.hostName, cuts);
  const displayName =
    boundedText(textOf(displayNameRaw, at, 'displayName'), at, 'displayName', TEXT_LIMITS.name, cuts) ??
    boundedText(textOf(friendlyName, at, 'friendlyName'), at, 'friendlyName', TEXT_LIMITS.name, cuts);
  const aadTenantId = readable(() => guid(aadTenantIdRaw, at, 'aadTenantId'), ignored);
  const sidText = boundedText(textOf(sid, at, 'sid'), at, 'sid', TEXT_LIMITS.name, cuts);
  const ntDomainText = boundedText(textOf(ntDomain, at, 'ntDomain') ?? domainOfName, at, 'ntDomain', TEXT_LIMITS.name, cuts);

  // Only the fields present, in one order: entities are compared and serialized, and objects built alike share a shape.
  const account: AccountEntity = { kind: 'account' };
  if (aadUserId !== undefined) account.aadUserId = aadUserId;
  if (upn !== undefined) account.upn = upn;
  if (accountName !== undefined) account.accountName = accountName;
  if (upnSuffix !== undefined) account.upnSuffix = upnSuffix;
  if (displayName !== undefined) account.displayName = displayName;
  if (aadTenantId !== undefined) account.aadTenantId = aadTenantId;
  if (sidText !== undefined) account.sid = sidText;
  if (ntDomainText !== undefined) account.ntDomain = ntDomainText;
  if (malformed.length > 0) account.malformed = malformed.join('; ');
  return account;
}

function parseHost(props: Record<string, unknown>, { fields: at, data }: EntityAt, cuts: string[]): HostEntity {
  const values = HOST.read(props);
  const extra = additionalData(values[4], HOST_EXTRA, at);
  const malformed: string[] = [];
  const mdatp = readable(() => deviceId(values, extra, 0, at, data), malformed);
  const aadDeviceId = readable(() => deviceId(values, extra, 1, at, data), malformed);
  const hostNameText = textOf(values[5], at, 'hostName');
  const dnsDomainText = textOf(values[6], at, 'dnsDomain');
  // A domain without a dot (`CONTOSO`) is a NetBIOS domain, not a DNS suffix: it makes no FQDN.
  const fqdnText =
    ownOrData(values, extra, 2, at, data) ??
    (hostNameText?.includes('.') ? hostNameText : hostNameText && dnsDomainText?.includes('.') ? `${hostNameText}.${dnsDomainText}` : undefined);
  // A name that is not a DNS name (at most 253 characters) is kept, cut, for display, but never used to find a device.
  // `wks-042.contoso.com.` (rooted) is wks-042.contoso.com.
  const fqdnBare = fqdnText?.endsWith('.') ? fqdnText.slice(0, -1) : fqdnText;
  const fqdn = fqdnBare && isDnsName(fqdnBare) ? fqdnBare.toLowerCase() : undefined;
  const hostName = boundedText(hostNameText, at, 'hostName', TEXT_LIMITS.hostName, cuts);
  const dnsDomain = boundedText(dnsDomainText, at, 'dnsDomain', TEXT_LIMITS.hostName, cuts);
  const netBiosName = boundedText(textOf(values[7], at, 'netBiosName'), at, 'netBiosName', TEXT_LIMITS.name, cuts);
  const azureId = boundedText(textOf(values[8], at, 'azureID'), at, 'azureID', TEXT_LIMITS.resource, cuts);
  const osFamily = boundedText(textOf(values[9], at, 'osFamily'), at, 'osFamily', TEXT_LIMITS.name, cuts);
  const risk = deviceRisk(ownOrData(values, extra, 3, at, data));

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

/** A host field from the entity itself first; additionalData fills the gap (alerts put Defender ids there). */
function ownOrData(values: unknown[], extra: unknown[] | undefined, i: number, at: Location, data: Location): string | undefined {
  const name = HOST_SHARED[i] as string;
  return textOf(values[i], at, name) ?? (extra && textOf(extra[i], data, name));
}

/**
 * The Defender device id (0) or the Entra device id (1), lower-cased, from the entity or its additionalData; a
 * malformed one is refused at the place it was read, which is where the sender has to look.
 */
function deviceId(values: unknown[], extra: unknown[] | undefined, i: 0 | 1, at: Location, data: Location): string | undefined {
  const name = HOST_SHARED[i];
  const own = textOf(values[i], at, name);
  const id = own ?? (extra && textOf(extra[i], data, name));
  if (id === undefined) return undefined;
  if (!(i === 0 ? isMdeDeviceId(id) : isGuid(id))) {
    const expected = i === 0 ? 'a Defender device id is 40 hexadecimal characters' : 'expected a GUID';
    throw new InputError((own === undefined ? data : at).at(name), `${expected}, got ${quote(id)}`);
  }
  return id.toLowerCase();
}

/** The property that identifies an entity of each well-known kind (EntityTypes.json), by the kind's usual spelling. */
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
const VALUE_PROPERTY: Record<string, FieldTable<string>> = Object.fromEntries(
  Object.entries(VALUE_PROPERTIES).map(([kind, names]) => [kind.toLowerCase(), new FieldTable(names)]),
);
/**
 * Each known kind's lower-case name, from its usual spellings (incident entities say `Account`, alert entities
 * `account`): most entities' kinds are found without building a lower-cased copy.
 */
const KIND_NAMES = new NameIndex(['Account', 'Host', ...Object.keys(VALUE_PROPERTIES)].map((kind) => [kind, kind.toLowerCase()] as const));
/** Kinds we do not know are named by their name. */
const ANY_VALUE = new FieldTable(['name', 'friendlyName']);

function parseOther(sourceKind: string, props: Record<string, unknown>, entityAt: Location, at: Location, cuts: string[]): OtherEntity {
  // The first of the kind's value properties that holds text or a number.
  const table = Object.hasOwn(VALUE_PROPERTY, sourceKind) ? (VALUE_PROPERTY[sourceKind] as FieldTable<string>) : ANY_VALUE;
  const candidate = table.read(props).find((v) => typeof v === 'string' || typeof v === 'number');
  const kind = boundedText(sourceKind, entityAt, 'kind', TEXT_LIMITS.name, cuts) as string;
  return candidate === undefined
    ? { kind: 'other', sourceKind: kind, properties: props }
    : { kind: 'other', sourceKind: kind, value: boundedText(String(candidate), at, 'value', TEXT_LIMITS.resource, cuts) as string, properties: props };
}

/** `CONTOSO\jsmith` -> [`CONTOSO`, `jsmith`]; a name without a backslash has no domain. */
function splitDomain(text: string | undefined): [string | undefined, string | undefined] {
  const slash = text?.lastIndexOf('\\') ?? -1;
  if (text === undefined || slash === -1) return [undefined, text];
  return [text.slice(0, slash) || undefined, text.slice(slash + 1) || undefined];
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
function identifierOf(entity: Entity): string | undefined {
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
      const target = existing as unknown as Record<string, unknown>;
      let differs = false;
      for (const [key, value] of Object.entries(entity)) {
        if (target[key] === undefined) target[key] = value;
        else if (IDENTIFYING.has(key) && typeof value === 'string' && !sameName(key, String(target[key]), value)) differs = true;
      }
      // A mention that names the entity differently is kept in sight, so that the first cannot hide it.
      if (differs) {
        const names = Object.fromEntries(Object.entries(entity).filter(([key]) => IDENTIFYING.has(key)));
        ((existing as { otherMentions?: unknown[] }).otherMentions ??= []).push(names);
      }
      continue;
    }
    if (same) same.push(entity);
    else byId.set(id, [entity]);
    merged.push(entity);
  }
  return merged;
}

/** The fields that say who an entity is: mentions of one entity must agree on them. */
const IDENTIFYING = new Set(['aadUserId', 'upn', 'accountName', 'sid', 'mdatpDeviceId', 'aadDeviceId', 'fqdn', 'hostName', 'netBiosName']);

/** Host names are compared by their first label (`WKS-042` is `wks-042.contoso.com`); everything else whole. */
function sameName(key: string, a: string, b: string): boolean {
  return key === 'hostName' || key === 'netBiosName' ? shortHostName(a) === shortHostName(b) : a.toLowerCase() === b.toLowerCase();
}

function sameKind(a: Entity, b: Entity): boolean {
  return a.kind === b.kind && (a.kind !== 'other' || a.sourceKind === (b as OtherEntity).sourceKind);
}
