import { setTimeout as delay } from 'node:timers/promises';
import { classifyFailure } from '../actions/failure';
import type { Devices, Machine } from '../clients/defender';
import type { Directory } from '../clients/graph';
import { describe } from '../signals/fields';
import { isGuid, isMdeDeviceId } from '../signals/identifiers';
import { DEVICE_RISK_LEVELS, USER_RISK_LEVELS, type AccountEntity, type Entity, type HostEntity, type Signal } from '../signals/signal';

export interface EnrichmentPorts {
  directory: Directory;
  devices: Devices | undefined;
}

/** How long what was read stays good, across invocations of one instance. */
export const ENRICHMENT_TTL_MS = 60_000;

/**
 * A read that fails transiently (a 429 with its Retry-After, a 5xx, no answer, the engine's own pacing) is made again,
 * up to this many times in all and waiting this long at most in all: enrichment runs inside the incident's request,
 * and what it cannot read holds the action for a human. In an outbreak (incidents of one device each, against
 * Defender's quota compressed) a single 429 on a read had held 9 to 15 of 300 isolations, and 133 of 1,000.
 */
export const ENRICHMENT_READ_ATTEMPTS = 3;
export const ENRICHMENT_RETRY_WAIT_MS = 10_000;
/** The wait before the next attempt when the failure names none: this times the attempts made so far. */
const RETRY_STEP_MS = 250;

/**
 * Verify explicitly: before deciding, fill in what the signal does not say — user risk (ID Protection), privilege
 * (active PIM role assignments), membership of the groups the policy names, and device risk, tags and Defender id.
 * Every lookup that fails leaves the value unknown and says so in the signal's notes: unknown data never makes a rule
 * act and always makes a guardrail hold, so a degraded decision is a cautious one, never a failed request.
 *
 * ID Protection allows one request per second per tenant, so user risk is not read per account: the tenant's list of
 * at-risk and confirmed-compromised users is read once per TTL and every account is answered from it (absent = none).
 */
export class Enricher {
  private riskyUsers: { at: number; levels: Promise<Map<string, string>> } | undefined;
  private readonly cache = new Map<string, { at: number; value: Promise<unknown> }>();

  constructor(
    private readonly ports: () => Promise<EnrichmentPorts>,
    private readonly now: () => number = Date.now,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => delay(ms),
  ) {}

  async enrich(signal: Signal, groupsOfInterest: readonly string[]): Promise<Signal> {
    const ports = await this.ports();
    const notes: string[] = [];
    const entities = await Promise.all(
      signal.entities.map((entity): Promise<Entity> | Entity => {
        if (entity.kind === 'account') return this.account(entity, ports, groupsOfInterest, notes);
        if (entity.kind === 'host') return this.host(entity, ports, notes);
        return entity;
      }),
    );
    return { ...signal, entities, notes: [...signal.notes, ...dedupe(notes)] };
  }

  private async account(account: AccountEntity, { directory }: EnrichmentPorts, groups: readonly string[], notes: string[]): Promise<AccountEntity> {
    const out: AccountEntity = { ...account };
    const label = account.upn ?? account.aadUserId ?? '(account)';
    if (!out.aadUserId && out.upn) {
      // UPNs are resolved once, early: actions and protection checks then key on the object id.
      const upn = out.upn;
      const user = await this.attempt(notes, `object id of ${label}`, () => this.cached(`user:${upn}`, async () => (await directory.getUser(upn)) ?? null));
      if (user === null) notes.push(`${label} is not in the directory`);
      if (!user) return out;
      // What an API answers becomes the target of an action and part of its key: checked like a payload's ids.
      if (typeof user.id !== 'string' || !isGuid(user.id)) {
        notes.push(`the directory answered ${describe(user.id)} as the object id of ${label}, not a GUID: treated as unknown`);
        return out;
      }
      out.aadUserId = user.id.toLowerCase();
    }
    const id = out.aadUserId;
    if (!id) return out;

    const levels = await this.attempt(notes, 'user risk (ID Protection)', () => this.riskLevels(directory));
    if (levels) {
      const level = levels.get(id) ?? 'none';
      out.userRisk = (USER_RISK_LEVELS as readonly string[]).includes(level) ? (level as AccountEntity['userRisk']) : 'none';
    }
    const roles = await this.attempt(notes, `privileged roles of ${label} (PIM)`, () => this.cached(`roles:${id}`, () => directory.listActiveRoles(id)));
    // Any active directory role counts as privileged: erring this way sends more actions to a human, never fewer.
    if (roles) out.privileged = roles.length > 0;
    if (groups.length > 0) {
      const member = await this.attempt(notes, `group membership of ${label}`, () =>
        this.cached(`groups:${id}:${groups.join(',')}`, async () =>
          (await Promise.all(chunks(groups, 20).map((g) => directory.checkMemberGroups(id, g)))).flat(),
        ),
      );
      if (member) out.groupIds = member.map((g) => g.toLowerCase());
    }
    return out;
  }

  private async host(host: HostEntity, { devices }: EnrichmentPorts, notes: string[]): Promise<HostEntity> {
    if (!devices) return host;
    const label = host.fqdn ?? host.hostName ?? host.mdatpDeviceId ?? '(device)';
    const key = host.mdatpDeviceId ?? host.aadDeviceId ?? host.fqdn;
    if (!key) return host;
    const machine = await this.attempt(notes, `Defender data for ${label}`, () =>
      this.cached(`machine:${key}`, async (): Promise<Machine | null> => {
        if (host.mdatpDeviceId) return (await devices.getMachine(host.mdatpDeviceId)) ?? null;
        const found = host.aadDeviceId
          ? await devices.findMachines({ aadDeviceId: host.aadDeviceId })
          : await devices.findMachines({ computerDnsName: host.fqdn as string });
        const exact = found.filter(
          (m) => !host.fqdn || host.aadDeviceId || (typeof m.computerDnsName === 'string' && m.computerDnsName.toLowerCase() === host.fqdn),
        );
        return exact.length === 1 ? (exact[0] as Machine) : null;
      }),
    );
    if (!machine) {
      if (machine === null) notes.push(`${label} is not a single Defender for Endpoint device: its risk and tags are unknown`);
      return host;
    }
    // Defender's answer is checked like a payload: its id becomes the isolation's target, and tags missing from it must
    // hold an isolation for approval (unknown), not let it through as "no critical tag".
    if (typeof machine.id !== 'string' || !isMdeDeviceId(machine.id)) {
      notes.push(`Defender answered ${describe(machine.id)} as the id of ${label}, not a Defender device id: its risk and tags are unknown`);
      return host;
    }
    const out: HostEntity = { ...host, mdatpDeviceId: host.mdatpDeviceId ?? machine.id.toLowerCase() };
    const tags: unknown = machine.machineTags;
    if (Array.isArray(tags) && tags.every((tag) => typeof tag === 'string')) out.tags = tags;
    else notes.push(`Defender gave no list of machine tags for ${label}: its tags are unknown`);
    const risk = DEVICE_RISK_LEVELS.find((r) => r === machine.riskScore);
    if (risk) out.deviceRisk = risk;
    if (!out.aadDeviceId && typeof machine.aadDeviceId === 'string' && isGuid(machine.aadDeviceId)) out.aadDeviceId = machine.aadDeviceId.toLowerCase();
    if (typeof machine.exposureLevel === 'string' && machine.exposureLevel) out.exposure = machine.exposureLevel;
    return out;
  }

  private riskLevels(directory: Directory): Promise<Map<string, string>> {
    if (!this.riskyUsers || this.now() - this.riskyUsers.at >= ENRICHMENT_TTL_MS) {
      const levels = directory.listRiskyUsers().then((users) => new Map(users.map((u) => [u.id.toLowerCase(), u.riskLevel])));
      this.riskyUsers = { at: this.now(), levels };
      levels.catch(() => (this.riskyUsers = undefined)); // a failure is not cached
    }
    return this.riskyUsers.levels;
  }

  private cached<T>(key: string, read: () => Promise<T>): Promise<T> {
    const hit = this.cache.get(key);
    if (hit && this.now() - hit.at < ENRICHMENT_TTL_MS) return hit.value as Promise<T>;
    const value = read();
    this.cache.set(key, { at: this.now(), value });
    value.catch(() => this.cache.delete(key));
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value as string);
    return value;
  }

  /** The value, or undefined with a note saying what could not be read and why; transient failures are tried again. */
  private async attempt<T>(notes: string[], what: string, read: () => Promise<T>): Promise<T | undefined> {
    let waited = 0;
    for (let attempts = 1; ; attempts++) {
      try {
        return await read();
      } catch (error) {
        const failure = classifyFailure(error);
        const wait = Math.max(failure.retryAfterMs ?? 0, RETRY_STEP_MS * attempts);
        if (failure.class !== 'transient' || attempts >= ENRICHMENT_READ_ATTEMPTS || waited + wait > ENRICHMENT_RETRY_WAIT_MS) {
          notes.push(`${what} unavailable (${failure.detail}): treated as unknown`);
          return undefined;
        }
        waited += wait;
        await this.sleep(wait);
      }
    }
  }
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function dedupe(notes: string[]): string[] {
  return [...new Set(notes)];
}
