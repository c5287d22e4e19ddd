import { isGuid, isMdeDeviceId, shortHostName } from '../signals/identifiers';
import type { AccountEntity, EntityData, HostEntity, VerifiedDevice, VerifiedUser } from '../signals/signal';
import { deviceConflicts, namesOf, objectIdOfCloudSid, userConflicts, type DeviceClaims, type UserClaims } from './identity';
import { NameIndex } from '../signals/names';
import { accountLabel } from './score';

/**
 * Who and what the engine must never touch, and how to tell. The directory decides who a target is: protection is
 * checked against what Graph or Defender answered for it (`verified`) as well as against the payload, and a payload that
 * names someone else than the directory is a `conflict`. When the data is not enough to tell (no object id to compare
 * with a listed id, group membership or device tags unknown), the answer is `unverified`, never `clear`. The caller
 * holds the action for a human on either, or waits when the data that would tell (`lacks`) is only unavailable for now.
 */
export type ProtectionVerdict = { status: 'clear' } | { status: 'protected' | 'unverified' | 'conflict'; why: string; lacks?: EntityData };
/** One shared object for the common answer: checked for every candidate action, it need not be allocated each time. */
const CLEAR: ProtectionVerdict = Object.freeze({ status: 'clear' });

/** The protected lists, sorted by identifier type once per policy load (not per entity). */
export interface ProtectionIndex {
  userIds: Set<string>;
  upns: Set<string>;
  /** Listed without a domain (`breakglass1`): matched against account names and UPN local parts. */
  userNames: Set<string>;
  /** On-premises SIDs (`S-1-5-21-…`), upper-cased. */
  sids: Set<string>;
  groupIds: Set<string>;
  deviceIds: Set<string>;
  aadDeviceIds: Set<string>;
  /** Host names, lower-cased: the fully qualified ones, the short ones (no domain), and the short form of all. */
  deviceNames: { qualified: Set<string>; unqualified: Set<string>; shortForms: Set<string> };
  deviceTags: NameIndex<true>;
}

const SID = /^S-1-\d{1,20}(-\d{1,10}){1,15}$/i;

export function indexProtection(
  lists: { users: string[]; groups: string[]; devices: string[]; deviceTags: string[] },
  engineIdentities: readonly string[],
): ProtectionIndex {
  const index: ProtectionIndex = {
    userIds: new Set(engineIdentities.map((id) => id.toLowerCase())),
    upns: new Set(),
    userNames: new Set(),
    sids: new Set(),
    groupIds: new Set(lists.groups.map((g) => g.toLowerCase())),
    deviceIds: new Set(),
    aadDeviceIds: new Set(),
    deviceNames: { qualified: new Set(), unqualified: new Set(), shortForms: new Set() },
    deviceTags: NameIndex.of(lists.deviceTags),
  };
  for (const raw of lists.users) {
    // `CONTOSO\breakglass1` is the account name breakglass1: the domain part never matches a UPN or a name alone.
    const user = withoutDomainPrefix(raw.trim().toLowerCase());
    const cloudAccount = objectIdOfCloudSid(user);
    if (isGuid(user)) index.userIds.add(user);
    // A cloud account's SID (S-1-12-1-…) is its object id spelled otherwise: the directory gives such users no SID.
    else if (cloudAccount !== undefined) index.userIds.add(cloudAccount);
    else if (SID.test(user)) index.sids.add(user.toUpperCase());
    else if (user.includes('@')) index.upns.add(user);
    else index.userNames.add(user);
  }
  for (const raw of lists.devices) {
    // `dc01.contoso.com.` (fully qualified with the root) is dc01.contoso.com.
    const device = raw.trim().toLowerCase().replace(/\.$/, '');
    if (isMdeDeviceId(device)) index.deviceIds.add(device);
    else if (isGuid(device)) index.aadDeviceIds.add(device);
    else {
      index.deviceNames[device.includes('.') ? 'qualified' : 'unqualified'].add(device);
      index.deviceNames.shortForms.add(shortHostName(device));
    }
  }
  return index;
}

/** `DOMAIN\name` -> `name`. */
export function withoutDomainPrefix(name: string): string {
  const slash = name.lastIndexOf('\\');
  return slash === -1 ? name : name.slice(slash + 1);
}

/**
 * Is this account protected? In order: what the directory says it is (when enrichment or the worker verified it), then
 * whether the payload's identifiers disagree with the directory (a conflict: held for a human, even when the payload
 * names a protected account: that name on someone else's id must neither act on them nor spare the real target), then
 * what the payload says, then whether the data is enough to tell.
 */
export function checkAccount(account: AccountEntity, index: ProtectionIndex): ProtectionVerdict {
  const claims = { id: account.aadUserId, upn: account.upn, accountName: account.accountName, sid: account.sid };
  const verdict = checkUser(claims, account.verified, account.groupIds, index, accountLabel(account));
  if (verdict.status === 'protected' || !account.otherMentions?.length) return verdict;
  // Other mentions that call the account differently: as long as every name is the directory's, they agree.
  const others = account.otherMentions.map((m) => ({ id: m.aadUserId, upn: m.upn, accountName: m.accountName, sid: m.sid }));
  const verified = account.verified;
  return withMentions(verdict, verified ? others.flatMap((m) => userConflicts(m, verified)) : undefined);
}

/**
 * Mentions of one entity that name it differently: a conflict when the directory's record disagrees with one of them,
 * or when there is no record to tell (`conflicts` undefined); unless the entity is refused outright.
 */
function withMentions(verdict: ProtectionVerdict, conflicts: string[] | undefined): ProtectionVerdict {
  if (conflicts === undefined)
    return {
      status: 'conflict',
      why: `the payload's mentions of it name it differently, and the directory was not read to tell which is right`,
      lacks: 'identity',
    };
  if (conflicts.length === 0) return verdict;
  return { status: 'conflict', why: `another mention of it in the payload disagrees with the directory: ${conflicts.join('; ')}` };
}

/** `checkAccount` on an action's target and what the directory answered for it (the worker, at execution). */
export function checkUser(
  claims: UserClaims,
  verified: VerifiedUser | undefined,
  groupIds: readonly string[] | undefined,
  index: ProtectionIndex,
  label: string = verified?.upn ?? claims.upn ?? claims.id ?? '(unknown account)',
): ProtectionVerdict {
  if (verified) {
    // Every address the directory gives the user counts, mail included: listed by any of them, they are protected.
    const listed = listedUser(
      { id: verified.id, upns: [verified.upn, verified.onPremisesUpn, verified.mail], names: namesOf(verified), sid: verified.sid },
      index,
    );
    if (listed) return { status: 'protected', why: `${verified.upn} is listed as protected (${listed}, as the directory says)` };
    // Group membership is only ever read for the directory's user.
    if (groupIds?.some((g) => index.groupIds.has(g.toLowerCase()))) return { status: 'protected', why: `${verified.upn} is a member of a protected group` };
    const conflicts = userConflicts(claims, verified);
    if (conflicts.length > 0) {
      const named = listedUser(userNames(claims), index);
      return {
        status: 'conflict',
        why: `the payload and the directory disagree on who ${label} is: ${conflicts.join('; ')}${named ? `; the payload's ${named} is protected` : ''}`,
      };
    }
  }
  const listed = listedUser(userNames(claims), index);
  // Unverified, only the identifier the user would be found by (the object id, else the UPN) can refuse: a protected
  // name beside another id may be an attacker's disguise for their own account, which must not be spared on its word.
  const lookup = claims.id !== undefined ? { id: claims.id } : { upn: claims.upn };
  if (listed && (verified || listedUser(userNames(lookup), index))) return { status: 'protected', why: `${label} is listed as protected (${listed})` };
  if (listed)
    return {
      status: 'unverified',
      why: `the payload names a protected account (${listed}) beside ${label}, and the directory was not read to tell who this is`,
      lacks: 'identity',
    };
  if (groupIds?.some((g) => index.groupIds.has(g.toLowerCase()))) return { status: 'protected', why: `${label} is a member of a protected group` };

  // The engine's own identity counts too: run locally, DefaultAzureCredential signs in as a developer's user
  // account, which does have a UPN. Verified, the directory's object id and UPN are known.
  if (!verified && !claims.id && index.userIds.size > 0)
    return { status: 'unverified', why: `${label} has no object id to compare with the protected object ids`, lacks: 'identity' };
  if (!verified && !claims.upn && index.upns.size > 0)
    return { status: 'unverified', why: `${label} has no UPN to compare with the protected UPNs`, lacks: 'identity' };
  if (!verified && !claims.accountName && !claims.upn && index.userNames.size > 0)
    return { status: 'unverified', why: `${label} has no account name to compare with the protected names`, lacks: 'identity' };
  if (!verified && !claims.sid && index.sids.size > 0)
    return { status: 'unverified', why: `${label} has no SID to compare with the protected SIDs`, lacks: 'identity' };
  if (groupIds === undefined && index.groupIds.size > 0)
    return { status: 'unverified', why: `group membership of ${label} is unknown, and protected groups are listed`, lacks: 'groups' };
  return CLEAR;
}

/** What a payload calls a user, for the protected lists. */
function userNames(claims: UserClaims): { id?: string | undefined; upns: Array<string | undefined>; names: string[]; sid?: string | undefined } {
  const upn = claims.upn?.toLowerCase();
  const names = [claims.accountName?.toLowerCase(), upn?.split('@')[0]].filter((n): n is string => n !== undefined);
  return { id: claims.id?.toLowerCase(), upns: [upn], names, sid: claims.sid };
}

/** Which list names the user (`object id`, `UPN`, `account name`, `SID`), or undefined. */
function listedUser(
  who: { id?: string | undefined; upns: Array<string | undefined>; names: string[]; sid?: string | undefined },
  index: ProtectionIndex,
): string | undefined {
  if (who.id !== undefined && index.userIds.has(who.id)) return 'object id';
  if (who.upns.some((upn) => upn !== undefined && index.upns.has(upn))) return 'UPN';
  if (index.userNames.size > 0 && who.names.some((name) => index.userNames.has(name))) return 'account name';
  if (who.sid !== undefined && index.sids.has(who.sid.toUpperCase())) return 'SID';
  return undefined;
}

/** Is this device protected? The same order as for accounts: Defender's record, a conflict, the payload, enough data. */
export function checkHost(host: HostEntity, index: ProtectionIndex): ProtectionVerdict {
  const claims = { id: host.mdatpDeviceId, aadDeviceId: host.aadDeviceId, fqdn: host.fqdn, hostName: host.hostName, netBiosName: host.netBiosName };
  const verdict = checkDevice(claims, host.verified, host.verified?.tags ?? host.tags, index);
  if (verdict.status === 'protected' || !host.otherMentions?.length) return verdict;
  const others = host.otherMentions.map((m) => ({
    id: m.mdatpDeviceId,
    aadDeviceId: m.aadDeviceId,
    fqdn: m.fqdn,
    hostName: m.hostName,
    netBiosName: m.netBiosName,
  }));
  const verified = host.verified;
  return withMentions(verdict, verified ? others.flatMap((m) => deviceConflicts(m, verified)) : undefined);
}

/** `checkHost` on an action's target and what Defender answered for it (the worker, at execution). */
export function checkDevice(
  claims: DeviceClaims,
  verified: VerifiedDevice | undefined,
  tags: readonly string[] | undefined,
  index: ProtectionIndex,
): ProtectionVerdict {
  const label = verified?.computerDnsName ?? claims.fqdn ?? claims.hostName ?? claims.id ?? claims.aadDeviceId ?? '(unknown device)';
  if (verified) {
    // The device's stale records are the device too: a list written before it was re-onboarded names one of those.
    const listed =
      listedDevice({ id: verified.id, aadDeviceId: verified.aadDeviceId, names: [verified.computerDnsName] }, index) ??
      (verified.otherRecords?.some((id) => index.deviceIds.has(id)) ? 'Defender id of another record of it' : undefined);
    // A device reports its own name: when other live devices report the same protected name, it proves nothing.
    if (listed === 'name' && verified.namesakes?.length)
      return {
        status: 'conflict',
        why: `${label} is a protected name, and ${verified.namesakes.length + 1} devices report it (${[verified.id, ...verified.namesakes].join(', ')}): which one is protected is for a human to say`,
      };
    if (listed) return { status: 'protected', why: `${label} is listed as protected (${listed}, as Defender says)` };
    const tag = tags && index.deviceTags.firstOf(tags);
    if (tag !== undefined) return { status: 'protected', why: `${label} carries the protected tag "${tag}"` };
    const conflicts = deviceConflicts(claims, verified);
    if (conflicts.length > 0) {
      const named = listedDevice(deviceNames(claims), index);
      return {
        status: 'conflict',
        why: `the payload and Defender disagree on which device this is: ${conflicts.join('; ')}${named ? `; the payload's ${named} is protected` : ''}`,
      };
    }
  }
  const listed = listedDevice(deviceNames(claims), index);
  // As for accounts: unverified, only the identifier the device would be found by can refuse; other names hold.
  const lookup = claims.id !== undefined ? { id: claims.id } : claims.aadDeviceId !== undefined ? { aadDeviceId: claims.aadDeviceId } : { fqdn: claims.fqdn };
  if (listed && (verified || listedDevice(deviceNames(lookup), index))) return { status: 'protected', why: `${label} is listed as protected (${listed})` };
  if (listed)
    return {
      status: 'unverified',
      why: `the payload names a protected device (${listed}) beside ${label}, and Defender was not read to tell which it is`,
      lacks: 'identity',
    };
  const tag = tags && index.deviceTags.firstOf(tags);
  if (tag !== undefined) return { status: 'protected', why: `${label} carries the protected tag "${tag}"` };

  // Verified, Defender's record gives the device's id and name, and no Entra device id means it has none.
  if (!verified && !claims.id && index.deviceIds.size > 0)
    return { status: 'unverified', why: `${label} has no Defender id to compare with the protected device ids`, lacks: 'identity' };
  if (!verified && !claims.aadDeviceId && index.aadDeviceIds.size > 0)
    return { status: 'unverified', why: `${label} has no Entra device id to compare with the protected device ids`, lacks: 'identity' };
  if (!verified && !claims.fqdn && !claims.hostName && index.deviceNames.shortForms.size > 0)
    return { status: 'unverified', why: `${label} has no name to compare with the protected device names`, lacks: 'identity' };
  if (tags === undefined && index.deviceTags.size > 0)
    return { status: 'unverified', why: `the tags of ${label} are unknown, and protected tags are listed`, lacks: 'deviceTags' };
  return CLEAR;
}

function deviceNames(claims: DeviceClaims): { id?: string | undefined; aadDeviceId?: string | undefined; names: Array<string | undefined> } {
  return { id: claims.id?.toLowerCase(), aadDeviceId: claims.aadDeviceId?.toLowerCase(), names: [claims.fqdn, claims.hostName, claims.netBiosName] };
}

/** Which list names the device (`Defender id`, `Entra device id`, `name`), or undefined. */
function listedDevice(
  device: { id?: string | undefined; aadDeviceId?: string | undefined; names: Array<string | undefined> },
  index: ProtectionIndex,
): string | undefined {
  if (device.id !== undefined && index.deviceIds.has(device.id)) return 'Defender id';
  if (device.aadDeviceId !== undefined && index.aadDeviceIds.has(device.aadDeviceId)) return 'Entra device id';
  if (index.deviceNames.shortForms.size > 0 && device.names.some((name) => nameIsListed(name, index))) return 'name';
  return undefined;
}

/**
 * Whether protection needs a device's other records under its name (withRecordsSharingName): when Defender ids are
 * listed (a stale record's may be), or when the device's own name is listed (another device may report it too).
 */
export function needsRecordsSharingName(index: ProtectionIndex, name: string): boolean {
  return index.deviceIds.size > 0 || nameIsListed(name, index);
}

/**
 * Exact names only, never substrings (reference/sentinel.md). When either side lacks a domain, the short names are
 * compared (`DC01` is taken to be `dc01.contoso.com`), erring toward protection; two different fully qualified
 * names are two different devices.
 */
function nameIsListed(raw: string | undefined, index: ProtectionIndex): boolean {
  if (!raw) return false;
  const name = raw.toLowerCase();
  const { qualified, unqualified, shortForms } = index.deviceNames;
  const dot = name.indexOf('.');
  // A short name is compared with the short form of every listed name; a qualified one with the listed qualified
  // names as it is, and with the listed short names by its first label. Sets: a SOC may protect hundreds of servers.
  if (dot === -1) return shortForms.has(name);
  return qualified.has(name) || (unqualified.size > 0 && unqualified.has(name.slice(0, dot)));
}
