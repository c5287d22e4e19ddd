import type { AccountEntity, HostEntity } from '../signals/signal';

/** Who or what an action acts on. Built from an entity; carries every identifier we have, strongest first. */
export type ActionTarget = UserTarget | DeviceTarget;

/**
 * A user as the signal named them. The id (else the UPN) finds them in the directory; the other identifiers are claims
 * the worker checks against the directory's answer before acting (shared/policy/identity.ts). The display name is shown,
 * never compared.
 */
export interface UserTarget {
  type: 'user';
  /** Entra object id. */
  id?: string;
  upn?: string;
  accountName?: string;
  sid?: string;
  displayName?: string;
}

/** A device as the signal named it: the Defender id, else the Entra device id, else the FQDN finds it; names are claims. */
export interface DeviceTarget {
  type: 'device';
  /** Defender for Endpoint machine id. */
  id?: string;
  aadDeviceId?: string;
  fqdn?: string;
  hostName?: string;
  netBiosName?: string;
}

export function userTarget(account: AccountEntity): UserTarget {
  const target: UserTarget = { type: 'user' };
  if (account.aadUserId) target.id = account.aadUserId;
  if (account.upn) target.upn = account.upn;
  if (account.accountName) target.accountName = account.accountName;
  if (account.sid) target.sid = account.sid;
  if (account.displayName) target.displayName = account.displayName;
  return target;
}

export function deviceTarget(host: HostEntity): DeviceTarget {
  const target: DeviceTarget = { type: 'device' };
  if (host.mdatpDeviceId) target.id = host.mdatpDeviceId;
  if (host.aadDeviceId) target.aadDeviceId = host.aadDeviceId;
  if (host.fqdn) target.fqdn = host.fqdn;
  if (host.hostName) target.hostName = host.hostName;
  if (host.netBiosName) target.netBiosName = host.netBiosName;
  return target;
}

/**
 * The one identifier that names a target in keys and logs, lower-cased: the strongest one present (device lookup
 * order from reference/sentinel.md: Defender id, then Entra device id, then exact FQDN). Undefined when there is none.
 * Two targets of one type are the same target exactly when their ids are equal.
 */
export function targetId(target: ActionTarget): string | undefined {
  // toLowerCase returns the very string when it is already lower-case, as normalized signals' ids are: the string
  // (and the hash a Map has cached on it) is reused, not copied.
  const id = target.type === 'user' ? (target.id ?? target.upn) : (target.id ?? target.aadDeviceId ?? target.fqdn);
  return id?.toLowerCase();
}

/** Whether two targets name the same principal by a strong identifier (object id, UPN, Defender id, Entra device id, FQDN). */
export function sameTarget(a: ActionTarget, b: ActionTarget): boolean {
  if (a.type !== b.type) return false;
  const strong = (t: ActionTarget) =>
    (t.type === 'user' ? [t.id, t.upn] : [t.id, t.aadDeviceId, t.fqdn]).filter((v): v is string => v !== undefined).map((v) => v.toLowerCase());
  const mine = strong(a);
  return strong(b).some((identifier) => mine.includes(identifier));
}

/** A short human label: `jdoe@contoso.com`, `web01.contoso.com`. A display name, which nothing checks, comes last. */
export function targetLabel(target: ActionTarget): string {
  if (target.type === 'user') return target.upn ?? target.id ?? target.displayName ?? '(unknown user)';
  return target.fqdn ?? target.hostName ?? target.id ?? target.aadDeviceId ?? '(unknown device)';
}

/** The object id or UPN to address a user target by in Graph, or undefined when it is not a user or has neither. */
export function userReference(target: ActionTarget): string | undefined {
  return target.type === 'user' ? (target.id ?? target.upn) : undefined;
}
