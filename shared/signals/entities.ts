import { InputError } from '../errors';
import type { AccountEntity, DeviceRiskLevel, Entity, HostEntity, OtherEntity } from './signal';
import { DEVICE_RISK_LEVELS } from './signal';
import { Fields } from './fields';
import { isDnsName, isGuid, isMdeDeviceId, isUpn } from './identifiers';

/**
 * Entities as Sentinel sends them, in either spelling:
 * - incident `relatedEntities`: `{ kind: "Account", properties: { aadUserId, accountName, upnSuffix, additionalData } }`
 * - alert `Entities`: `{ "$id": "1", "Type": "account", "AadUserId": …, "UPNSuffix": … }` (properties inline)
 * Unknown kinds are carried as `other`; they never fail the parse (reference/sentinel.md).
 */
export function parseEntity(raw: unknown, path: string): Entity | undefined {
  const outer = Fields.of(raw, path);
  const kind = entityKind(outer);
  // An alert entity that is only a `$ref` points at an entity listed elsewhere in the same array.
  if (kind === undefined) return undefined;
  const props = outer.object('properties') ?? outer;
  switch (kind) {
    case 'account':
      return parseAccount(props);
    case 'host':
      return parseHost(props);
    default:
      return parseOther(kind, props);
  }
}

/** The entity's kind, lower-cased; undefined for a bare `{ "$ref": … }`. */
function entityKind(outer: Fields): string | undefined {
  // Incident entities carry `type: "Microsoft.SecurityInsights/Entities"` next to `kind`; alert entities carry `Type`.
  const kind = outer.string('kind') ?? outer.string('type');
  if (kind !== undefined && !kind.includes('/')) return kind.toLowerCase();
  if (outer.get('$ref') !== undefined && outer.get('$id') === undefined) return undefined;
  throw new InputError(outer.at('kind'), 'every entity needs a kind (Account, Host, Ip, …)');
}

function parseAccount(props: Fields): AccountEntity {
  const extra = props.object('additionalData');
  const aadUserId = guid(props, 'aadUserId') ?? (extra ? guid(extra, 'AadUserId') : undefined);
  const accountName = props.string('accountName') ?? props.string('name');
  const upnSuffix = props.string('upnSuffix');
  const upnText = accountName?.includes('@') ? accountName : accountName && upnSuffix ? `${accountName}@${upnSuffix}` : props.string('userPrincipalName');
  const upn = upnText && isUpn(upnText) ? upnText.toLowerCase() : undefined;
  return dropUndefined({
    kind: 'account' as const,
    aadUserId,
    upn,
    accountName,
    upnSuffix,
    displayName: props.string('displayName') ?? props.string('friendlyName'),
    aadTenantId: guid(props, 'aadTenantId'),
    sid: props.string('sid'),
    ntDomain: props.string('ntDomain'),
  });
}

function parseHost(props: Fields): HostEntity {
  const extra = props.object('additionalData');
  const read = (name: string): string | undefined => props.string(name) ?? extra?.string(name);
  const mdatp = read('MdatpDeviceId');
  if (mdatp !== undefined && !isMdeDeviceId(mdatp)) {
    throw new InputError(props.at('MdatpDeviceId'), 'a Defender device id is 40 hexadecimal characters');
  }
  const aadDeviceId = read('AadDeviceId');
  if (aadDeviceId !== undefined && !isGuid(aadDeviceId)) throw new InputError(props.at('AadDeviceId'), 'expected a GUID');
  const hostName = props.string('hostName');
  const dnsDomain = props.string('dnsDomain');
  const fqdnText = read('FQDN') ?? (hostName?.includes('.') ? hostName : hostName && dnsDomain ? `${hostName}.${dnsDomain}` : undefined);
  // A name that is not a DNS name is kept for display but never used to find a device.
  const fqdn = fqdnText && isDnsName(fqdnText) ? fqdnText.toLowerCase() : undefined;
  return dropUndefined({
    kind: 'host' as const,
    mdatpDeviceId: mdatp?.toLowerCase(),
    aadDeviceId: aadDeviceId?.toLowerCase(),
    fqdn,
    hostName,
    dnsDomain,
    netBiosName: props.string('netBiosName'),
    azureId: props.string('azureID'),
    osFamily: props.string('osFamily'),
    deviceRisk: deviceRisk(read('RiskScore')),
  });
}

/** The property that identifies an entity of each well-known kind (EntityTypes.json). */
const VALUE_PROPERTY: Record<string, string[]> = {
  ip: ['address'],
  url: ['url'],
  file: ['fileName', 'name'],
  filehash: ['hashValue', 'value'],
  mailbox: ['mailboxPrimaryAddress', 'upn'],
  mailmessage: ['internetMessageId', 'networkMessageId'],
  cloudapplication: ['name', 'appId'],
  dns: ['domainName'],
  process: ['commandLine', 'processId'],
  registrykey: ['key'],
  registryvalue: ['name'],
  malware: ['malwareName', 'name'],
  azureresource: ['resourceId'],
  securitygroup: ['objectGuid', 'distinguishedName'],
  iotdevice: ['deviceId'],
  submissionmail: ['submissionId'],
};

function parseOther(sourceKind: string, props: Fields): OtherEntity {
  let value: string | undefined;
  for (const name of VALUE_PROPERTY[sourceKind] ?? ['name', 'friendlyName']) {
    const candidate = props.get(name);
    if (typeof candidate === 'string' || typeof candidate === 'number') {
      value = String(candidate);
      break;
    }
  }
  return dropUndefined({ kind: 'other' as const, sourceKind, value, properties: props.raw() });
}

function guid(fields: Fields, name: string): string | undefined {
  const value = fields.string(name);
  if (value === undefined) return undefined;
  if (!isGuid(value)) throw new InputError(fields.at(name), `expected a GUID, got ${JSON.stringify(value)}`);
  return value.toLowerCase();
}

function deviceRisk(value: string | undefined): DeviceRiskLevel | undefined {
  if (value === undefined) return undefined;
  return DEVICE_RISK_LEVELS.find((level) => level.toLowerCase() === value.toLowerCase());
}

/**
 * Entities are compared and serialized: keep them free of explicit `undefined` fields. Copies rather than
 * `delete`s, which would turn every entity into a slow dictionary-mode object.
 */
function dropUndefined<T extends object>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const key in value) if (value[key] !== undefined) out[key] = value[key];
  return out as T;
}

/** The identity two entity mentions share when they are the same thing; undefined when there is nothing to go by. */
export function entityIdentity(entity: Entity): string | undefined {
  switch (entity.kind) {
    case 'account':
      return entity.aadUserId ? `account:${entity.aadUserId}` : entity.upn ? `account:${entity.upn}` : undefined;
    case 'host':
      return entity.mdatpDeviceId
        ? `host:${entity.mdatpDeviceId}`
        : entity.aadDeviceId
          ? `host:${entity.aadDeviceId}`
          : entity.fqdn
            ? `host:${entity.fqdn}`
            : undefined;
    default:
      return entity.value === undefined ? undefined : `${entity.sourceKind}:${entity.value.toLowerCase()}`;
  }
}

/**
 * Merge repeated mentions of one entity (alerts repeat them; incident updates add detail): the first mention wins
 * each field, later ones fill the gaps.
 */
export function mergeEntities(entities: Entity[], notes: string[]): Entity[] {
  const byIdentity = new Map<string, Entity>();
  const merged: Entity[] = [];
  for (const entity of entities) {
    const identity = entityIdentity(entity);
    if (entity.kind !== 'other' && identity === undefined) {
      notes.push(`${entity.kind} entity without a usable identifier (no object id, UPN, device id or FQDN): no action can target it`);
    }
    const existing = identity === undefined ? undefined : byIdentity.get(identity);
    if (existing) {
      const target = existing as unknown as Record<string, unknown>;
      for (const [key, value] of Object.entries(entity)) if (target[key] === undefined) target[key] = value;
      continue;
    }
    if (identity !== undefined) byIdentity.set(identity, entity);
    merged.push(entity);
  }
  return merged;
}
