import { setTimeout as delay } from 'node:timers/promises';
import { classifyFailure } from '../actions/failure';
import { resolveDevice, resolveUser, withRecordsSharingName } from '../actions/resolveTarget';
import { needsRecordsSharingName, type ProtectionIndex } from '../policy/protection';
import type { Devices } from '../clients/defender';
import { memberGroups, type Directory } from '../clients/graph';
import { displayText, TEXT_LIMITS } from '../limits';
import { isDnsName } from '../signals/identifiers';
import {
  DEVICE_RISK_LEVELS,
  USER_RISK_LEVELS,
  type AccountEntity,
  type Entity,
  type EntityData,
  type HostEntity,
  type Signal,
  type UnavailableData,
} from '../signals/signal';

export interface EnrichmentPorts {
  directory: Directory;
  devices: Devices | undefined;
}

/** How long what was read stays good, across invocations of one instance. */
export const ENRICHMENT_TTL_MS = 60_000;

/**
 * A read that fails transiently (a 429 with its Retry-After, a 5xx, no answer, the engine's own pacing) is made again,
 * up to this many times in all and waiting this long at most in all: enrichment runs inside the incident's request.
 * What it still cannot read is marked unavailable for now (`unavailable`, with why): the decision waits for it and the
 * engine evaluates the incident again later, rather than hold the request open for a budget to refill.
 */
export const ENRICHMENT_READ_ATTEMPTS = 3;
export const ENRICHMENT_RETRY_WAIT_MS = 10_000;
/** The wait before the next attempt when the failure names none: this times the attempts made so far. */
const RETRY_STEP_MS = 250;

/** Enrichment's durations by name (RESPONDER_TIME_SCALE compresses them). */
export interface EnrichmentTimings {
  ttlMs: number;
  retryWaitMs: number;
  retryStepMs: number;
}

export const ENRICHMENT_TIMINGS: EnrichmentTimings = { ttlMs: ENRICHMENT_TTL_MS, retryWaitMs: ENRICHMENT_RETRY_WAIT_MS, retryStepMs: RETRY_STEP_MS };

/**
 * At most this many entities are read at once, and at most ENRICHED_PER_KIND accounts and as many devices per signal:
 * a payload with a thousand UPNs must not become a thousand parallel Graph reads. Entities past the cap stay unknown
 * (rules on their risk do not match, guardrails hold), and the worker still resolves every target before acting.
 */
export const ENRICHMENT_CONCURRENCY = 8;
export const ENRICHED_PER_KIND = 50;
/** checkMemberGroups takes 20 group ids a call. */
const MEMBERSHIP_GROUPS_PER_CALL = 20;

/** How an enrichment runs: `preview` for a what-if plan, which tries each read once and never waits for a budget. */
export interface EnrichOptions {
  preview?: boolean;
  /** The policy's protected lists: whether a device's other records under its name must be read too. */
  protection?: ProtectionIndex;
}

/**
 * Verify explicitly: before deciding, fill in what the signal does not say — user risk (ID Protection), privilege
 * (active PIM role assignments), membership of the groups the policy names, and device risk, tags and Defender id.
 * Every lookup that fails leaves the value unknown and says so in the signal's notes. Unknown for good (not in the
 * directory, a 404, a 403, a malformed answer): it never makes a rule act and always makes a guardrail hold. Unknown
 * for now (a transient failure: see ENRICHMENT_READ_ATTEMPTS): the entity names it in `unavailable`, and what reads it
 * waits. A degraded decision is a cautious one, never a failed request.
 *
 * ID Protection allows one request per second per tenant, so user risk is not read per account: the tenant's list of
 * at-risk and confirmed-compromised users is read once per TTL and every account is answered from it (absent = none).
 */
export class Enricher {
  private riskyUsers: { at: number; levels: Promise<Map<string, string>> } | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly cache = new Map<string, { at: number; value: Promise<unknown> }>();

  constructor(
    private readonly ports: () => Promise<EnrichmentPorts>,
    private readonly now: () => number = Date.now,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => delay(ms),
    private readonly timings: EnrichmentTimings = ENRICHMENT_TIMINGS,
  ) {}

  async enrich(signal: Signal, groupsOfInterest: readonly string[], options: EnrichOptions = {}): Promise<Signal> {
    const ports = await this.ports();
    const notes: string[] = [];
    const attempts = options.preview ? 1 : ENRICHMENT_READ_ATTEMPTS;
    const seen = { account: 0, host: 0 };
    const skipped = { account: 0, host: 0 };
    const reads: Array<() => Promise<Entity>> = [];
    const entities: Entity[] = signal.entities.slice();
    entities.forEach((entity, i) => {
      if (entity.kind === 'other') return;
      if (++seen[entity.kind] > ENRICHED_PER_KIND) {
        // Held, not acted on unread: a payload of made-up accounts must not spend the caps real containment needs.
        skipped[entity.kind]++;
        entities[i] = { ...entity, notRead: `not read in the directory: past the first ${ENRICHED_PER_KIND} ${entity.kind}s of the signal` };
        return;
      }
      reads.push(
        async () =>
          (entities[i] =
            entity.kind === 'account'
              ? await this.account(entity, ports, groupsOfInterest, notes, attempts, options.preview === true, signal.source === 'sweep')
              : await this.host(entity, ports, notes, attempts, options)),
      );
    });
    await runAtMost(ENRICHMENT_CONCURRENCY, reads);
    for (const kind of ['account', 'host'] as const) {
      if (skipped[kind] > 0)
        notes.push(`${skipped[kind]} ${kind}(s) past the first ${ENRICHED_PER_KIND} were not read in the directory: actions on them are held for a human`);
    }
    return { ...signal, entities, notes: [...signal.notes, ...dedupe(notes)] };
  }

  private async account(
    account: AccountEntity,
    { directory }: EnrichmentPorts,
    groups: readonly string[],
    notes: string[],
    attempts: number,
    preview: boolean,
    /** The signal is a sweep's: its user's level is ID Protection's own, read for it moments ago, not a claim. */
    riskRead: boolean,
  ): Promise<AccountEntity> {
    const out: AccountEntity = { ...account };
    // ID Protection decides a user's risk: a level the payload claims (a risky-user record's) must not stand in for a failed read.
    const readForIt = riskRead ? account.userRisk : undefined;
    delete out.userRisk;
    const label = account.upn ?? account.aadUserId ?? '(account)';
    // The directory decides who the account is: it is read even when the payload gives an object id, so that
    // protection and the identity check compare what Graph says with what the payload claims.
    const reference = account.aadUserId ?? account.upn;
    if (reference === undefined) return out;
    const reads = new Reads(notes, attempts);
    // Without the directory's record nothing else is read: all of it waits with it.
    const resolved = await this.attempt(
      reads,
      `the directory's record of ${label}`,
      ['identity', 'userRisk', 'privileged', ...(groups.length > 0 ? (['groups'] as const) : [])],
      () => this.cached(`user:${reference}`, () => resolveUser({ id: account.aadUserId, upn: account.upn }, directory), preview),
    );
    if (!resolved) return reads.onto(out);
    if (resolved.status !== 'found') {
      notes.push(resolved.why);
      if (resolved.status === 'missing') out.notFound = resolved.why;
      return out;
    }
    const user = resolved.verified;
    out.verified = user;
    // UPNs are resolved once, early: actions and protection checks then key on the object id.
    out.aadUserId ??= user.id;
    out.upn ??= user.upn;
    const id = user.id;

    const levels =
      readForIt !== undefined
        ? new Map([[id, readForIt]])
        : await this.attempt(reads, 'user risk (ID Protection)', ['userRisk'], () => this.riskLevels(directory, preview));
    if (levels) {
      const level = levels.get(id) ?? 'none';
      out.userRisk = USER_RISK_LEVELS.find((known) => known === level) ?? 'none';
    }
    const roles = await this.attempt(reads, `privileged roles of ${label} (PIM)`, ['privileged'], () =>
      this.cached(`roles:${id}`, () => directory.listActiveRoles(id), preview),
    );
    // Any active directory role counts as privileged: erring this way sends more actions to a human, never fewer.
    if (roles) out.privileged = roles.length > 0;
    if (groups.length > MEMBERSHIP_GROUPS_PER_CALL && preview) {
      // A draft policy naming a thousand groups must not turn one plan into thousands of Graph calls.
      notes.push(`group membership of ${label} not read for a plan: the policy names more than ${MEMBERSHIP_GROUPS_PER_CALL} groups`);
    } else if (groups.length > 0) {
      const member = await this.attempt(reads, `group membership of ${label}`, ['groups'], () =>
        this.cached(`groups:${id}:${groups.join(',')}`, () => memberGroups(directory, id, groups), preview),
      );
      if (member) out.groupIds = member.map((g) => g.toLowerCase());
    }
    return reads.onto(out);
  }

  private async host(host: HostEntity, { devices }: EnrichmentPorts, notes: string[], attempts: number, options: EnrichOptions): Promise<HostEntity> {
    const preview = options.preview === true;
    if (!devices) return host;
    const label = host.fqdn ?? host.hostName ?? host.mdatpDeviceId ?? '(device)';
    const key = host.mdatpDeviceId ?? host.aadDeviceId ?? host.fqdn;
    if (!key) return host;
    const reads = new Reads(notes, attempts);
    const resolved = await this.attempt(reads, `Defender data for ${label}`, ['identity', 'deviceRisk', 'deviceTags'], async () => {
      const found = await this.cached(
        `machine:${key}`,
        () => resolveDevice({ id: host.mdatpDeviceId, aadDeviceId: host.aadDeviceId, fqdn: host.fqdn }, devices),
        preview,
      );
      if (found.status !== 'found' || !options.protection || !needsRecordsSharingName(options.protection, found.verified.computerDnsName)) return found;
      // Remembered apart from the lookup: whether they are read depends on the policy (a plan's draft may not need them).
      const verified = await this.cached(`names:${found.verified.id}`, () => withRecordsSharingName(found.verified, devices), preview);
      return { ...found, verified };
    });
    if (!resolved) return reads.onto({ ...host });
    if (resolved.status !== 'found') {
      notes.push(`${resolved.why}: the risk and tags of ${label} are unknown`);
      return resolved.status === 'missing' ? { ...host, notFound: resolved.why } : host;
    }
    const { verified: device, record: machine } = resolved;
    const out: HostEntity = { ...host, verified: device, mdatpDeviceId: host.mdatpDeviceId ?? device.id };
    if (device.tags) out.tags = device.tags;
    else notes.push(`Defender gave no list of machine tags for ${label}: its tags are unknown`);
    const risk = DEVICE_RISK_LEVELS.find((r) => r === machine.riskScore);
    if (risk) out.deviceRisk = risk;
    if (!out.aadDeviceId && device.aadDeviceId) out.aadDeviceId = device.aadDeviceId;
    if (!out.fqdn && isDnsName(device.computerDnsName)) out.fqdn = device.computerDnsName;
    if (typeof machine.exposureLevel === 'string' && machine.exposureLevel) out.exposure = displayText(machine.exposureLevel, TEXT_LIMITS.name);
    return out;
  }

  /**
   * The tenant's at-risk users, read once per TTL. A plan's (`preview`) read is remembered only once it has succeeded: a
   * read refused to spare containment's budget must never be the answer a concurrent incident waits on.
   */
  private riskLevels(directory: Directory, preview: boolean): Promise<Map<string, string>> {
    const held = this.riskyUsers;
    if (held && this.now() - held.at < this.timings.ttlMs) {
      // Past half its life the list is read again in the background: an incident never waits for a refresh of a list
      // the engine holds (at ID Protection's 1 call a second, a tenant's pages take seconds), and none is older than the TTL.
      if (!preview && !this.refreshing && this.now() - held.at >= this.timings.ttlMs / 2) this.refreshRiskLevels(directory);
      return held.levels;
    }
    const at = this.now();
    const levels = directory.listRiskyUsers().then((users) => new Map(users.map((u) => [u.id.toLowerCase(), u.riskLevel])));
    if (preview) {
      levels.then(
        (read) => {
          if (!this.riskyUsers || this.now() - this.riskyUsers.at >= this.timings.ttlMs) this.riskyUsers = { at, levels: Promise.resolve(read) };
        },
        () => undefined,
      );
      return levels;
    }
    this.riskyUsers = { at, levels };
    levels.catch(() => (this.riskyUsers = undefined)); // a failure is not cached
    return levels;
  }

  private refreshRiskLevels(directory: Directory): void {
    const at = this.now();
    this.refreshing = directory
      .listRiskyUsers()
      .then((users) => void (this.riskyUsers = { at, levels: Promise.resolve(new Map(users.map((u) => [u.id.toLowerCase(), u.riskLevel]))) }))
      .catch(() => undefined) // the list held stays until its TTL; the next read after that waits for a fresh one
      .finally(() => (this.refreshing = undefined));
  }

  /** A read remembered for the TTL; a plan's (`preview`) reads are remembered only once they succeed, as above. */
  private cached<T>(key: string, read: () => Promise<T>, preview: boolean): Promise<T> {
    const hit = this.cache.get(key);
    if (hit && this.now() - hit.at < this.timings.ttlMs) return hit.value as Promise<T>;
    const at = this.now();
    const value = read();
    if (preview) {
      value.then(
        (read) => {
          const now = this.cache.get(key);
          if (!now || this.now() - now.at >= this.timings.ttlMs) this.remember(key, at, Promise.resolve(read));
        },
        () => undefined,
      );
      return value;
    }
    this.remember(key, at, value);
    value.catch(() => this.cache.delete(key));
    return value;
  }

  private remember(key: string, at: number, value: Promise<unknown>): void {
    this.cache.set(key, { at, value });
    const oldest = this.cache.keys().next();
    if (this.cache.size > 10_000 && !oldest.done) this.cache.delete(oldest.value);
  }

  /**
   * The value, or undefined with a note saying what could not be read and why; transient failures are tried again, and
   * one that still fails marks `data` unavailable for now on the entity being read.
   */
  private async attempt<T>(reads: Reads, what: string, data: readonly EntityData[], read: () => Promise<T>): Promise<T | undefined> {
    let waited = 0;
    for (let attempts = 1; ; attempts++) {
      try {
        return await read();
      } catch (error) {
        const failure = classifyFailure(error);
        const wait = Math.max(failure.retryAfterMs ?? 0, this.timings.retryStepMs * attempts);
        const passes = failure.class === 'transient' || failure.class === 'paced';
        if (passes && attempts < reads.attempts && waited + wait <= this.timings.retryWaitMs) {
          waited += wait;
          await this.sleep(wait);
          continue;
        }
        if (!passes) {
          reads.notes.push(`${what} unavailable (${failure.detail}): treated as unknown`);
          return undefined;
        }
        reads.notes.push(`${what} unavailable for now (${failure.detail}): what reads it waits for it`);
        for (const d of data)
          reads.unavailable.push({ data: d, why: failure.detail, ...(failure.retryAfterMs !== undefined && { retryAfterMs: failure.retryAfterMs }) });
        return undefined;
      }
    }
  }
}

/** One entity's reads: how many attempts each may make, the signal's notes, and what the entity could not have for now. */
class Reads {
  readonly unavailable: UnavailableData[] = [];
  constructor(
    readonly notes: string[],
    readonly attempts: number,
  ) {}

  /** `entity` with what it could not have for now, by name. */
  onto<E extends AccountEntity | HostEntity>(entity: E): E {
    if (this.unavailable.length > 0) entity.unavailable = this.unavailable;
    return entity;
  }
}

/** Run `tasks`, at most `limit` at a time. */
async function runAtMost(limit: number, tasks: ReadonlyArray<() => Promise<unknown>>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) await (tasks[next++] as () => Promise<unknown>)();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

function dedupe(notes: string[]): string[] {
  return [...new Set(notes)];
}
