import type { Devices, Machine } from '../clients/defender';
import type { Directory, DirectoryUser } from '../clients/graph';
import { displayText, TEXT_LIMITS } from '../limits';
import { describe } from '../signals/fields';
import { isGuid, isMdeDeviceId, shortHostName } from '../signals/identifiers';
import type { VerifiedDevice, VerifiedUser } from '../signals/signal';
import type { DeviceTarget, UserTarget } from './target';

/**
 * Who a target really is: the directory's answer for its strongest identifier (a user's object id, else UPN; a device's
 * Defender id, else Entra device id, else exact FQDN). Enrichment resolves entities before deciding, and the worker
 * resolves every target again before it acts, so that protection is checked against what Graph or Defender says.
 * - `found`: the record, and the identity checked like a payload (it becomes the target of a write);
 * - `missing`: the directory has no such user or device;
 * - `unclear`: it answered, but not with one identity the engine can act on — held for a human, never guessed.
 */
export type Resolution<V, R> = { status: 'found'; verified: V; record: R } | { status: 'missing'; why: string } | { status: 'unclear'; why: string };

export async function resolveUser(target: Pick<UserTarget, 'id' | 'upn'>, directory: Directory): Promise<Resolution<VerifiedUser, DirectoryUser>> {
  const reference = target.id ?? target.upn;
  if (reference === undefined) return { status: 'unclear', why: 'no object id or UPN to find the user by' };
  const user = await directory.getUser(reference);
  if (!user) return { status: 'missing', why: `${reference} is not in the directory` };
  const verified = verifiedUser(user);
  return typeof verified === 'string' ? { status: 'unclear', why: `${reference}: ${verified}` } : { status: 'found', verified, record: user };
}

export async function resolveDevice(target: Pick<DeviceTarget, 'id' | 'aadDeviceId' | 'fqdn'>, devices: Devices): Promise<Resolution<VerifiedDevice, Machine>> {
  const label = target.id ?? target.aadDeviceId ?? target.fqdn;
  if (label === undefined) return { status: 'unclear', why: 'no Defender id, Entra device id or FQDN to find the device by' };
  if (target.id !== undefined) {
    let machine = await devices.getMachine(target.id);
    if (!machine) return { status: 'missing', why: `${target.id} is not a Defender for Endpoint device` };
    // A stale record a re-onboarded device left behind points at its live one (an isolation posted to a stale record
    // contains nothing): followed a few hops, and held for a human if the chain does not end.
    const stale: string[] = [];
    for (let merged = mergedInto(machine); merged !== undefined; merged = mergedInto(machine)) {
      if (stale.length >= MERGE_HOPS) return { status: 'unclear', why: `Defender's records of ${target.id} are merged more than ${MERGE_HOPS} times over` };
      stale.push(machine.id.toLowerCase());
      const next: Machine | undefined = await devices.getMachine(merged);
      if (!next) return { status: 'unclear', why: `Defender merged ${machine.id} into ${merged}, which it does not list` };
      machine = next;
    }
    return found(machine, stale.length > 0 ? target.id.toLowerCase() : undefined, stale);
  }
  const matches = target.aadDeviceId
    ? await devices.findMachines({ aadDeviceId: target.aadDeviceId })
    : (await devices.findMachines({ computerDnsName: target.fqdn as string })).filter(
        (m) => typeof m.computerDnsName === 'string' && m.computerDnsName.toLowerCase() === target.fqdn,
      );
  if (matches.length === 0) return { status: 'missing', why: `${label} is not a Defender for Endpoint device` };
  const live = liveMachine(matches);
  if (live.status === 'ambiguous') return { status: 'unclear', why: `${label}: ${live.why}` };
  const resolved = found(live.machine, undefined, []);
  return resolved.status === 'found' ? { ...resolved, verified: withOtherRecords(resolved.verified, matches) } : resolved;
}

/**
 * The device's other records, and other devices, under its name, when protection needs them. A record is the device's
 * own (stale: a protected list written before a re-onboarding may name it by its Defender id) only on evidence — merged
 * into it, or the same Entra device id; every other record whose name has the same first label is a namesake, another
 * device reporting the name (a device reports its own name, so a compromised one can take a protected server's, in any
 * domain). One more Defender read, made only when the policy lists Defender ids or this device's name is listed.
 */
export async function withRecordsSharingName(device: VerifiedDevice, devices: Devices): Promise<VerifiedDevice> {
  const short = shortHostName(device.computerDnsName);
  const records = (await devices.findMachines({ computerDnsNameStartsWith: short })).filter(
    (m) => typeof m.computerDnsName === 'string' && shortHostName(m.computerDnsName) === short,
  );
  return withOtherRecords(device, records);
}

/** The device with the other records among `records` sorted into its own stale ones and other devices' (namesakes). */
function withOtherRecords(device: VerifiedDevice, records: readonly Machine[]): VerifiedDevice {
  const stale = new Set(device.otherRecords);
  const namesakes = new Set(device.namesakes);
  for (const m of records) {
    if (typeof m.id !== 'string' || m.id.toLowerCase() === device.id) continue;
    const sameDevice = mergedInto(m) === device.id || (device.aadDeviceId !== undefined && m.aadDeviceId?.toLowerCase() === device.aadDeviceId);
    (sameDevice ? stale : namesakes).add(m.id.toLowerCase());
  }
  return { ...device, ...(stale.size > 0 && { otherRecords: [...stale] }), ...(namesakes.size > 0 && { namesakes: [...namesakes] }) };
}

/** How many merges a chain of stale records may take to reach the live one. */
const MERGE_HOPS = 3;

function found(machine: Machine, mergedFrom: string | undefined, otherRecords: string[]): Resolution<VerifiedDevice, Machine> {
  const verified = verifiedDevice(machine, mergedFrom);
  if (typeof verified === 'string') return { status: 'unclear', why: verified };
  if (otherRecords.length > 0) verified.otherRecords = otherRecords;
  return { status: 'found', verified, record: machine };
}

/**
 * The live record among several Defender lists for one Entra device id or name. Re-onboarding (a reimage, a sensor
 * reinstalled) leaves stale records that share both (reference/defender.md): those merged into another are dropped,
 * onboarded ones preferred, then the ones still reporting (`healthStatus` Active). Two records both reporting are two
 * devices as far as anyone can tell: that stays ambiguous. Among records none of which reports, the one seen last.
 */
export function liveMachine(machines: readonly Machine[]): { status: 'live'; machine: Machine } | { status: 'ambiguous'; why: string } {
  if (machines.length === 1) return { status: 'live', machine: machines[0] as Machine };
  let candidates = machines.filter((m) => mergedInto(m) === undefined);
  const onboarded = candidates.filter((m) => onboardingStatus(m) === 'onboarded');
  if (onboarded.length > 0) candidates = onboarded;
  const reporting = candidates.filter((m) => m.healthStatus === 'Active');
  if (reporting.length > 0) candidates = reporting;
  if (candidates.length === 1) return { status: 'live', machine: candidates[0] as Machine };
  const ids = machines.map((m) => m.id).join(', ');
  if (reporting.length === 0 && candidates.length > 1) {
    const bySeen = candidates.map((m) => ({ m, at: Date.parse(m.lastSeen ?? '') })).filter((c) => !Number.isNaN(c.at));
    bySeen.sort((a, b) => b.at - a.at);
    const [latest, next] = bySeen;
    if (latest && bySeen.length === candidates.length && (!next || latest.at > next.at)) return { status: 'live', machine: latest.m };
  }
  return { status: 'ambiguous', why: `${machines.length} Defender records (${ids}) and none of them is clearly the live one` };
}

const mergedInto = (machine: Machine): string | undefined =>
  typeof machine.mergedIntoMachineId === 'string' && isMdeDeviceId(machine.mergedIntoMachineId) ? machine.mergedIntoMachineId.toLowerCase() : undefined;

/** The Machine doc spells the field `onboardingstatus` in its table and `onboardingStatus` in its filters: read both. */
const onboardingStatus = (machine: Machine): string | undefined => (machine.onboardingStatus ?? machine.onboardingstatus)?.toLowerCase();

/** A directory answer checked like a payload: its id becomes the target of writes, its names what protection compares. */
export function verifiedUser(user: DirectoryUser): VerifiedUser | string {
  if (typeof user.id !== 'string' || !isGuid(user.id)) return `the directory answered ${describe(user.id)} as the object id, not a GUID`;
  const upn = name(user.userPrincipalName, TEXT_LIMITS.upn);
  if (upn === undefined) return `the directory answered no UPN for ${user.id}`;
  const verified: VerifiedUser = { id: user.id.toLowerCase(), upn, guest: user.userType === 'Guest' };
  const onPremisesUpn = name(user.onPremisesUserPrincipalName, TEXT_LIMITS.upn);
  const samAccountName = name(user.onPremisesSamAccountName, TEXT_LIMITS.name);
  const sid = name(user.onPremisesSecurityIdentifier, TEXT_LIMITS.name);
  const mail = name(user.mail, TEXT_LIMITS.upn);
  if (onPremisesUpn !== undefined) verified.onPremisesUpn = onPremisesUpn;
  if (samAccountName !== undefined) verified.samAccountName = samAccountName;
  if (sid !== undefined) verified.sid = sid.toUpperCase();
  if (mail !== undefined) verified.mail = mail;
  return verified;
}

/** Defender's answer checked like a payload: the id becomes the isolation's target, the name and tags what protection compares. */
export function verifiedDevice(machine: Machine, mergedFrom?: string): VerifiedDevice | string {
  if (typeof machine.id !== 'string' || !isMdeDeviceId(machine.id))
    return `Defender answered ${describe(machine.id)} as a device id, not 40 hexadecimal characters`;
  const computerDnsName = name(machine.computerDnsName, TEXT_LIMITS.hostName);
  if (computerDnsName === undefined) return `Defender gave no name for device ${machine.id}`;
  const verified: VerifiedDevice = { id: machine.id.toLowerCase(), computerDnsName };
  if (typeof machine.aadDeviceId === 'string' && isGuid(machine.aadDeviceId)) verified.aadDeviceId = machine.aadDeviceId.toLowerCase();
  const tags: unknown = machine.machineTags;
  // Tags missing from the answer stay unknown: a guardrail on them must hold the isolation, not read "no critical tag".
  if (Array.isArray(tags) && tags.every((tag) => typeof tag === 'string')) verified.tags = tags.map((tag) => displayText(tag, TEXT_LIMITS.name));
  if (mergedFrom !== undefined) verified.mergedFrom = mergedFrom;
  return verified;
}

/** A name from an API answer (devices report their own names: outside text), one line, lower-cased and bounded. */
function name(value: unknown, max: number): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? displayText(value.trim().toLowerCase(), max) : undefined;
}
