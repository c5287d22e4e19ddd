import { isGuid, isMdeDeviceId, shortHostName } from '../signals/identifiers';
import type { AccountEntity, HostEntity } from '../signals/signal';
import { NameIndex } from '../signals/names';
import { accountLabel } from './score';

/**
 * Who and what the engine must never touch, and how to tell. The rule that keeps it safe: when the signal lacks the
 * data to tell (no object id to compare with a listed id, group membership or device tags unknown), the answer is
 * `unverified`, never `clear`; the caller then holds the action for a human.
 */
export type ProtectionVerdict = { status: 'clear' } | { status: 'protected' | 'unverified'; why: string };
/** One shared object for the common answer: checked for every candidate action, it need not be allocated each time. */
const CLEAR: ProtectionVerdict = Object.freeze({ status: 'clear' });

/** The protected lists, sorted by identifier type once per policy load (not per entity). */
export interface ProtectionIndex {
  userIds: Set<string>;
  upns: Set<string>;
  /** Listed without a domain (`breakglass1`): matched against account names and UPN local parts. */
  userNames: Set<string>;
  groupIds: Set<string>;
  deviceIds: Set<string>;
  aadDeviceIds: Set<string>;
  /** Host names, lower-cased: the fully qualified ones, the short ones (no domain), and the short form of all. */
  deviceNames: { qualified: Set<string>; unqualified: Set<string>; shortForms: Set<string> };
  deviceTags: NameIndex<true>;
}

export function indexProtection(
  lists: { users: string[]; groups: string[]; devices: string[]; deviceTags: string[] },
  engineIdentities: readonly string[],
): ProtectionIndex {
  const index: ProtectionIndex = {
    userIds: new Set(engineIdentities.map((id) => id.toLowerCase())),
    upns: new Set(),
    userNames: new Set(),
    groupIds: new Set(lists.groups.map((g) => g.toLowerCase())),
    deviceIds: new Set(),
    aadDeviceIds: new Set(),
    deviceNames: { qualified: new Set(), unqualified: new Set(), shortForms: new Set() },
    deviceTags: NameIndex.of(lists.deviceTags),
  };
  for (const raw of lists.users) {
    const user = raw.toLowerCase();
    if (isGuid(user)) index.userIds.add(user);
    else if (user.includes('@')) index.upns.add(user);
    else index.userNames.add(user);
  }
  for (const raw of lists.devices) {
    const device = raw.toLowerCase();
    if (isMdeDeviceId(device)) index.deviceIds.add(device);
    else if (isGuid(device)) index.aadDeviceIds.add(device);
    else {
      index.deviceNames[device.includes('.') ? 'qualified' : 'unqualified'].add(device);
      index.deviceNames.shortForms.add(shortHostName(device));
    }
  }
  return index;
}

export function checkAccount(account: AccountEntity, index: ProtectionIndex): ProtectionVerdict {
  // Called for every candidate action: the label is built only when there is something to say.
  // Ids compared lower-cased whoever built the signal (toLowerCase returns the very string when it already is).
  if (account.aadUserId && index.userIds.has(account.aadUserId.toLowerCase()))
    return { status: 'protected', why: `${accountLabel(account)} is listed as protected (object id)` };
  if (account.upn && index.upns.has(account.upn.toLowerCase())) return { status: 'protected', why: `${accountLabel(account)} is listed as protected (UPN)` };
  if (
    index.userNames.size > 0 &&
    [account.accountName?.toLowerCase(), account.upn?.toLowerCase().split('@')[0]].some((n) => n !== undefined && index.userNames.has(n))
  )
    return { status: 'protected', why: `${accountLabel(account)} is listed as protected (account name)` };
  if (account.groupIds?.some((g) => index.groupIds.has(g.toLowerCase())))
    return { status: 'protected', why: `${accountLabel(account)} is a member of a protected group` };

  // The engine's own identity counts too: run locally, DefaultAzureCredential signs in as a developer's user
  // account, which does have a UPN.
  if (!account.aadUserId && index.userIds.size > 0)
    return { status: 'unverified', why: `${accountLabel(account)} has no object id to compare with the protected object ids` };
  if (!account.upn && index.upns.size > 0) return { status: 'unverified', why: `${accountLabel(account)} has no UPN to compare with the protected UPNs` };
  if (!account.accountName && !account.upn && index.userNames.size > 0)
    return { status: 'unverified', why: `${accountLabel(account)} has no account name to compare with the protected names` };
  if (account.groupIds === undefined && index.groupIds.size > 0)
    return { status: 'unverified', why: `group membership of ${accountLabel(account)} is unknown, and protected groups are listed` };
  return CLEAR;
}

export function checkHost(host: HostEntity, index: ProtectionIndex): ProtectionVerdict {
  const label = host.fqdn ?? host.hostName ?? host.mdatpDeviceId ?? host.aadDeviceId ?? '(unknown device)';
  if (host.mdatpDeviceId && index.deviceIds.has(host.mdatpDeviceId.toLowerCase()))
    return { status: 'protected', why: `${label} is listed as protected (Defender id)` };
  if (host.aadDeviceId && index.aadDeviceIds.has(host.aadDeviceId.toLowerCase()))
    return { status: 'protected', why: `${label} is listed as protected (Entra device id)` };
  if (index.deviceNames.shortForms.size > 0 && matchesListedName(host, index)) return { status: 'protected', why: `${label} is listed as protected (name)` };
  const tag = host.tags && index.deviceTags.firstOf(host.tags);
  if (tag !== undefined) return { status: 'protected', why: `${label} carries the protected tag "${tag}"` };

  if (!host.mdatpDeviceId && index.deviceIds.size > 0)
    return { status: 'unverified', why: `${label} has no Defender id to compare with the protected device ids` };
  if (!host.aadDeviceId && index.aadDeviceIds.size > 0)
    return { status: 'unverified', why: `${label} has no Entra device id to compare with the protected device ids` };
  if (!host.fqdn && !host.hostName && index.deviceNames.shortForms.size > 0)
    return { status: 'unverified', why: `${label} has no name to compare with the protected device names` };
  if (host.tags === undefined && index.deviceTags.size > 0)
    return { status: 'unverified', why: `the tags of ${label} are unknown, and protected tags are listed` };
  return CLEAR;
}

/**
 * Exact names only, never substrings (reference/sentinel.md). When either side lacks a domain, the short names are
 * compared (`DC01` is taken to be `dc01.contoso.com`), erring toward protection; two different fully qualified
 * names are two different devices.
 */
function matchesListedName(host: HostEntity, index: ProtectionIndex): boolean {
  return nameIsListed(host.fqdn, index) || nameIsListed(host.hostName, index) || nameIsListed(host.netBiosName, index);
}

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
