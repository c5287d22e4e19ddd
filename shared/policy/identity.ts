import { isGuid, shortHostName } from '../signals/identifiers';
import type { VerifiedDevice, VerifiedUser } from '../signals/signal';

/**
 * Whether what a payload says of a target agrees with what the directory says. Entity data is attacker-influenced (names,
 * UPNs and host names come from what happens on endpoints and in sign-ins), so a payload's identifiers are claims; the
 * directory's answer for the strongest of them decides who the target is. Every claim that names someone else is a
 * disagreement, and a disagreement holds the action for a human with both values: acting on either side could hurt
 * the wrong principal, or let an attacker keep their own machine out of containment by naming a protected one.
 * Pure: plain data in, plain sentences out.
 */

/** What a payload claims about a user (an account entity, or an action's target). */
export interface UserClaims {
  id?: string;
  upn?: string;
  /** A sAMAccountName or the UPN's local part, as an account entity names it. */
  accountName?: string;
  sid?: string;
}

/** What a payload claims about a device. */
export interface DeviceClaims {
  id?: string;
  aadDeviceId?: string;
  fqdn?: string;
  hostName?: string;
  netBiosName?: string;
}

/** Each way the payload's claims name someone other than the directory's user, with both values. */
export function userConflicts(claims: UserClaims, user: VerifiedUser): string[] {
  const conflicts: string[] = [];
  const id = claims.id?.toLowerCase();
  if (id !== undefined && id !== user.id) conflicts.push(`the payload's object id is ${id}, the directory's is ${user.id}`);
  const name = claims.accountName?.toLowerCase();
  const sid = claims.sid?.toUpperCase();
  // Entra-joined devices name cloud users by a SID made from the object id (S-1-12-1-…), and by a local form of their
  // name: a SID that is the object id vouches for the entity, and its name is not compared.
  const cloudSid = sid === undefined ? undefined : objectIdOfCloudSid(sid);
  if (sid !== undefined && (cloudSid !== undefined ? cloudSid !== user.id : sid !== user.sid?.toUpperCase())) {
    conflicts.push(`the payload's SID is ${sid}, the directory's is ${user.sid?.toUpperCase() ?? `none (cloud account ${user.id})`}`);
  }
  const nameVouched = cloudSid !== undefined && cloudSid === user.id;
  const nameKnown = name !== undefined && (name.includes('@') ? upnsOf(user) : namesOf(user)).includes(name);
  if (name !== undefined && !nameVouched && !nameKnown) {
    conflicts.push(`the payload's account name is ${name}, the directory's names are ${namesOf(user).join(', ')}`);
  }
  const upn = claims.upn?.toLowerCase();
  // A UPN a payload built from the account name and a domain (accountName@upnSuffix) is only as good as that name: when
  // the name is one of the user's, a guessed UPN that is not theirs is no disagreement.
  const guessed = upn !== undefined && name !== undefined && nameKnown && upn.startsWith(`${name}@`);
  if (upn !== undefined && !upnsOf(user).includes(upn) && !guessed) conflicts.push(`the payload's UPN is ${upn}, the directory's is ${user.upn}`);
  return conflicts;
}

/** Each way the payload's claims name another device than Defender's live record, with both values. */
export function deviceConflicts(claims: DeviceClaims, device: VerifiedDevice): string[] {
  const conflicts: string[] = [];
  const id = claims.id?.toLowerCase();
  if (id !== undefined && id !== device.id && id !== device.mergedFrom) conflicts.push(`the payload's Defender id is ${id}, Defender's is ${device.id}`);
  const aad = claims.aadDeviceId?.toLowerCase();
  if (aad !== undefined && aad !== device.aadDeviceId) {
    conflicts.push(`the payload's Entra device id is ${aad}, Defender's is ${device.aadDeviceId ?? 'none'} (${device.computerDnsName})`);
  }
  const fqdn = claims.fqdn?.toLowerCase();
  const qualified = device.computerDnsName.includes('.');
  if (fqdn !== undefined && (qualified ? fqdn !== device.computerDnsName : shortHostName(fqdn) !== device.computerDnsName)) {
    conflicts.push(`the payload's host name is ${fqdn}, Defender's is ${device.computerDnsName}`);
  }
  const short = shortHostName(device.computerDnsName);
  for (const [what, claimed] of [
    ['host name', claims.hostName],
    ['NetBIOS name', claims.netBiosName],
  ] as const) {
    if (claimed === undefined) continue;
    // NetBIOS names are the first 15 characters of the host name.
    const wanted = what === 'NetBIOS name' ? short.slice(0, 15) : short;
    if (shortHostName(claimed) !== wanted) conflicts.push(`the payload's ${what} is ${claimed.toLowerCase()}, Defender's is ${device.computerDnsName}`);
  }
  return conflicts;
}

/** The UPNs the directory gives a user: a guest's home address is theirs too. */
function upnsOf(user: VerifiedUser): string[] {
  return [user.upn, user.onPremisesUpn, user.guest ? user.mail : undefined].filter((upn): upn is string => upn !== undefined);
}

/** The account names the directory gives a user: the local parts of their UPNs, and their sAMAccountName. */
export function namesOf(user: VerifiedUser): string[] {
  const names = upnsOf(user).map((upn) => upn.slice(0, upn.lastIndexOf('@') === -1 ? upn.length : upn.lastIndexOf('@')));
  if (user.samAccountName !== undefined) names.push(user.samAccountName);
  return [...new Set(names)];
}

/**
 * The object id a cloud account's SID encodes: S-1-12-1- and four 32-bit numbers, the GUID's 16 bytes in order (the
 * first three fields little-endian, as a GUID's bytes are laid out). Undefined for any other SID.
 */
export function objectIdOfCloudSid(sid: string): string | undefined {
  const match = /^S-1-12-1-(\d{1,10})-(\d{1,10})-(\d{1,10})-(\d{1,10})$/i.exec(sid);
  if (!match) return undefined;
  const bytes = Buffer.alloc(16);
  for (let i = 0; i < 4; i++) {
    const n = Number(match[i + 1]);
    if (n > 0xffffffff) return undefined;
    bytes.writeUInt32LE(n, i * 4);
  }
  const inOrder = (from: number, to: number): string => bytes.toString('hex', from, to);
  const reversed = (from: number, to: number): string => Buffer.from(bytes.subarray(from, to)).reverse().toString('hex');
  const guid = `${reversed(0, 4)}-${reversed(4, 6)}-${reversed(6, 8)}-${inOrder(8, 10)}-${inOrder(10, 16)}`;
  return isGuid(guid) ? guid : undefined;
}
