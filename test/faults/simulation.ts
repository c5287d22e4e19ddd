import type { AccessToken, TokenCredential } from '@azure/identity';
import type { ActionCommand } from '../../shared/actions/command';
import { idempotencyKeys, targetKeyPart } from '../../shared/actions/idempotency';
import type { ActionTarget } from '../../shared/actions/target';
import { ACTIONS } from '../../shared/actions/catalogue';
import { EXECUTORS } from '../../shared/actions/executors';
import { BatchedDevices } from '../../shared/clients/batchedDevices';
import { createDefenderDevices } from '../../shared/clients/defender';
import { createGraphDirectory } from '../../shared/clients/graph';
import type { SentinelIncidents } from '../../shared/clients/sentinel';
import { EnginePaced, Pacer } from '../../shared/coordination/pacer';
import { MemorySharedState } from '../../shared/coordination/sharedState';
import { DEFAULT_API_BUDGETS, everyDefenderApi } from '../../shared/coordination/pacer';
import { assemble } from '../../shared/composition';
import { LIFECYCLE_TIMINGS } from '../../shared/actions/lifecycle';
import { LedgerConflictError, type ActionLedger, type LedgerEntry } from '../../shared/ledger/ledger';
import { MemoryLedger } from '../../shared/ledger/memoryLedger';
import { logger } from '../../shared/log';
import { compilePolicy, decide, type CompiledPolicy } from '../../shared/policy/decide';
import { parsePolicy } from '../../shared/policy/load';
import { messageIdOf, type ActionQueue, type DeadLetteredMessage, type QueueMessage } from '../../shared/queue/queue';
import { normalizeSentinelPayload } from '../../shared/signals/sentinel';
import type { Signal } from '../../shared/signals/signal';
import { Enricher } from '../../shared/enrichment/enrich';
import { tenantRoutes } from '../../sandbox/server';
import { DEMO, DEMO_DEVICES, SandboxTenant } from '../../sandbox/tenant';
import { RefusedError } from '../../shared/errors';
import type { SandboxAnswer } from '../../sandbox/routes';

/**
 * The fault campaign's world, in one process and on a simulated clock: the real engine and worker, the real Graph
 * and Defender clients (their `fetch` answered in-process by the sandbox tenant's own routes), a broker twin with
 * Service Bus's delivery semantics, and a ledger twin — each with fault hooks a schedule drives. One schedule runs in
 * milliseconds, so a thousand run in CI; a subset runs the same way through the real SDK, emulator and Azurite.
 */

export type ApiFault = 'ok' | 'throttle' | 'server-error' | 'slow' | 'lost-response';
export type LedgerFault = 'ok' | 'conflict' | 'crash-before' | 'crash-after';
/**
 * `forged`: beside the message, the worker is handed a command someone allowed to send wrote from it: the same key on
 * another target, or the undo of its action under a key the ledger does not hold.
 */
export type DeliveryFault = 'ok' | 'duplicate' | 'lost-settle' | 'forged';
/** A paced read during enrichment: as the budget allows, or refused because it is spent (EnginePaced). */
export type BudgetFault = 'ok' | 'spent';

/**
 * An entity whose identifiers disagree: the id of one principal under the name of another (maybe a protected one),
 * and perhaps a name far longer than any limit, as an attacker who shapes entity data would send it.
 */
export interface Disguise {
  kind: 'user' | 'device';
  target: number;
  namedAs: number;
  oversized: boolean;
}

export interface Schedule {
  /** Incidents the relay submits: each names accounts and hosts by index into TARGETS, and disguised entities. */
  incidents: Array<{ users: number[]; devices: number[]; disguises?: Disguise[] }>;
  /** Decide with enrichment (the directory read before deciding), or on the payload alone (the worker is the gate). */
  enrich?: boolean;
  /**
   * Commands put straight on the queue, as if planned under an older policy (protected targets among them); a malformed
   * one carries a name no command may (the queue's schema refuses it), for an action the ledger holds.
   */
  direct: Array<{ kind: 'isolateDevice' | 'disableUser' | 'revokeSessions' | 'requirePimReapproval'; target: number; malformed?: boolean }>;
  /** The n-th API call, n-th ledger write, n-th delivery, n-th send or schedule meets the n-th fault (then ok). */
  apiFaults: ApiFault[];
  ledgerFaults: LedgerFault[];
  deliveryFaults: DeliveryFault[];
  sendFaults: boolean[];
  concurrency: number;
  /** A budget the pacer holds each Defender API to, or none. */
  defenderBudget?: { max: number; windowMs: number };
  /**
   * The n-th paced read enrichment makes meets the n-th budget fault: a spent budget (the engine's own pacing refuses
   * it, EnginePaced, for longer than a request may wait), so the data is unavailable for now and decisions wait for it.
   */
  budgetFaults?: BudgetFault[];
  /**
   * Analysts at work while the queue drains: at delivery step `atStep`, approve (once, or twice at once by two
   * analysts), deny, or roll back the `pick`-th action that can take it. Each retries after a failure, as an analyst
   * clicks again.
   */
  analysts?: AnalystStep[];
  seed: number;
}

export interface AnalystStep {
  op: 'approve' | 'approveTwice' | 'deny' | 'rollback';
  pick: number;
  atStep: number;
}

export const USERS = [DEMO.adele, DEMO.jsmith, DEMO.megan, DEMO.breakglass] as const;
const USER_NAMES = ['adele.vance', 'jsmith', 'megan.bowen', 'breakglass1'] as const;
export const DEVICES = [DEMO_DEVICES.wks042, DEMO_DEVICES.websrv1, DEMO_DEVICES.dc01] as const;
const DEVICE_NAMES = ['WKS-042', 'websrv1', 'DC01'] as const;
/**
 * The campaign's policy: it protects the break-glass account and the domain controller, which no schedule may touch,
 * each by one id and by name (so a name on another's id is what protection must see through).
 */
export const CAMPAIGN_POLICY = `version: 1
mode: enforce
protected: { users: [${DEMO.breakglass}, breakglass1@contoso.com], devices: [${DEMO_DEVICES.dc01}, dc01.contoso.com] }
guardrails:
  approvals: [{ action: disableUser, reason: an analyst approves each account disabled }]
rules:
  - { id: users, when: { entity: account }, then: [revokeSessions, disableUser] }
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
`;

/**
 * The in-process campaign's policy: CAMPAIGN_POLICY with rules that read user and device risk before its own, so that
 * budgets found spent during enrichment make decisions wait: confirm a high-risk user compromised, and isolate a
 * high-risk device Selective, ahead of the rule that isolates every device Full (which then waits behind it).
 */
export const RISK_CAMPAIGN_POLICY = CAMPAIGN_POLICY.replace(
  'rules:\n',
  `rules:
  - { id: risky-users, when: { entity: account, userRisk: [high] }, then: [confirmCompromised] }
  - { id: risky-hosts, when: { entity: host, deviceRisk: [High] }, then: [{ isolateDevice: { isolationType: Selective } }] }
`,
);

/** A crash: the error escapes the worker, as a process dying mid-step would leave the message unsettled. */
export class Crash extends Error {
  override readonly name = 'Crash';
}

export interface Outcome {
  /** Every action's ledger entry at the end, by key. */
  entries: LedgerEntry[];
  /** Actions that did not reach a final state (or, held for a human, have no reason). */
  lost: string[];
  /** Non-idempotent calls repeated for one action. */
  duplicates: string[];
  /** Calls that touched a protected principal. */
  protectedTouched: string[];
  /** Actions held for a human that ran without an analyst's approval. */
  unapproved: string[];
  /**
   * Actions a rule would have taken on a target with all its data read (a fault-free enrichment of the same incident)
   * that ended neither acted on, held nor refused: not in the ledger, or not needed.
   */
  dropped: string[];
  /** Forged commands the worker did not refuse, and entries the ledger holds for them. */
  forgedActed: string[];
  /** Forged commands delivered (each must be refused). */
  forged: number;
  /** Actions that waited for data at some point, and those of them that ended held for a human. */
  waited: number;
  heldAfterWaiting: number;
  deliveries: number;
  faultsFired: number;
}

const FINAL = new Set(['succeeded', 'failed', 'blocked', 'dead-lettered', 'denied', 'expired', 'rolled-back', 'not-needed']);
/** Where an action may stop short of a final state: held for a human, which it may only be with its reason. */
const HELD = 'pending-approval';
const MAX_DELIVERIES = 10;
const ANALYSTS = ['0a0b0c0d-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '0a0b0c0d-bbbb-4bbb-8bbb-bbbbbbbbbbbb'] as const;
const LOCK_MS = 60_000;

/** A deterministic PRNG (mulberry32): jitter and ordering come from the schedule's seed, so every run replays. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class FaultCursor<T extends string | boolean> {
  private index = 0;
  fired = 0;
  constructor(
    private readonly faults: readonly T[],
    private readonly ok: T,
  ) {}
  next(): T {
    const fault = this.faults[this.index++] ?? this.ok;
    if (fault !== this.ok) this.fired++;
    return fault;
  }
}

interface SimMessage {
  messageId: string;
  text: string;
  deliveryCount: number;
  availableAt: number;
}

/** The broker twin: peek-lock, redelivery on abandon, dead-lettering, scheduling, duplicate detection, and faults. */
class SimBroker implements ActionQueue {
  readonly pending: SimMessage[] = [];
  readonly deadLetters: Array<SimMessage & { reason: string }> = [];
  private readonly seen = new Set<string>();

  constructor(
    private readonly clock: { now: number },
    private readonly sends: FaultCursor<boolean>,
  ) {}

  async send(commands: readonly ActionCommand[]): Promise<void> {
    if (this.sends.next()) throw new Error('broker refused the send');
    for (const command of commands) this.accept(command, this.clock.now);
  }

  async schedule(message: QueueMessage, at: Date): Promise<void> {
    if (this.sends.next()) throw new Error('broker refused the schedule');
    this.accept(message, at.getTime());
  }

  async receiveDeadLetters(max: number): Promise<DeadLetteredMessage[]> {
    return this.deadLetters.slice(0, max).map((letter) => ({
      messageId: letter.messageId,
      body: JSON.parse(letter.text),
      reason: letter.reason,
      description: `delivered ${letter.deliveryCount} times`,
      deliveryCount: letter.deliveryCount,
      settle: async () => void this.deadLetters.splice(this.deadLetters.indexOf(letter), 1),
    }));
  }

  private accept(message: QueueMessage, availableAt: number): void {
    const messageId = messageIdOf(message);
    if (this.seen.has(messageId)) return; // duplicate detection: accepted, dropped
    this.seen.add(messageId);
    this.pending.push({ messageId, text: JSON.stringify(message), deliveryCount: 0, availableAt });
  }
}

/** The ledger twin with faults: spurious ETag conflicts, and crashes before or after a write lands. */
class FaultyLedger implements ActionLedger {
  constructor(
    readonly inner: MemoryLedger,
    private readonly faults: FaultCursor<LedgerFault>,
  ) {}
  create: ActionLedger['create'] = (entry) => this.inner.create(entry);
  get: ActionLedger['get'] = (key) => this.inner.get(key);
  list: ActionLedger['list'] = (filter) => this.inner.list(filter);
  countSince: ActionLedger['countSince'] = (kind, since) => this.inner.countSince(kind, since);
  recordDeadLetter: ActionLedger['recordDeadLetter'] = (record) => this.inner.recordDeadLetter(record);
  listDeadLetters: ActionLedger['listDeadLetters'] = () => this.inner.listDeadLetters();
  recordDecision: ActionLedger['recordDecision'] = (record) => this.inner.recordDecision(record);
  decisionOn: ActionLedger['decisionOn'] = (subject) => this.inner.decisionOn(subject);
  listDecisions: ActionLedger['listDecisions'] = (since) => this.inner.listDecisions(since);
  renewLease: ActionLedger['renewLease'] = (key, etag, lease) => this.inner.renewLease(key, etag, lease);
  transition: ActionLedger['transition'] = async (key, etag, to, event, patch) => {
    const fault = this.faults.next();
    if (fault === 'conflict') throw new LedgerConflictError(key);
    if (fault === 'crash-before') throw new Crash(`crashed before writing ${key} -> ${to}`);
    const written = await this.inner.transition(key, etag, to, event, patch);
    if (fault === 'crash-after') throw new Crash(`crashed after writing ${key} -> ${to}`);
    return written;
  };
}

/** A credential that never expires: the in-process APIs check nothing. */
const STATIC_CREDENTIAL: TokenCredential = {
  getToken: async (): Promise<AccessToken> => ({ token: 'campaign', expiresOnTimestamp: Date.now() + 3_600_000 }),
};

export const SIM_ORIGIN = 'https://sandbox.campaign';

/**
 * `fetch` for the real clients, answered by the sandbox tenant's routes without a socket. API faults apply per call:
 * a 429 with Retry-After, a 503, a slow answer (the event loop turns, so concurrent handlers interleave), or a lost
 * response — the call took effect but its answer never came back.
 */
function inProcessFetch(tenant: SandboxTenant, faults: FaultCursor<ApiFault>, log: Array<{ method: string; path: string; status: number; body: unknown }>) {
  const routes = tenantRoutes(tenant);
  return async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const text = typeof init?.body === 'string' ? init.body : input instanceof Request ? await input.text() : '';
    const fault = faults.next();
    if (fault === 'slow') for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    if (fault === 'throttle') return json({ status: 429, body: { error: { code: 'TooManyRequests', message: 'throttled' } }, headers: { 'retry-after': '2' } });
    if (fault === 'server-error') return json({ status: 503, body: { error: { code: 'ServiceUnavailable', message: 'try later' } } });
    const body = text ? JSON.parse(text) : undefined;
    let answer: SandboxAnswer | undefined;
    for (const route of routes)
      if ((answer = route({ method, path: url.pathname, query: url.searchParams, body, audience: SIM_ORIGIN, origin: SIM_ORIGIN }))) break;
    answer ??= { status: 404, body: { error: { code: 'NotFound', message: `no route ${method} ${url.pathname}` } } };
    log.push({ method, path: url.pathname, status: answer.status, body });
    tenant.calls.push({ method, path: url.pathname, query: url.search, status: answer.status });
    if (fault === 'lost-response') throw new TypeError('fetch failed: connection reset after the request was sent');
    return json(answer);
  };
}

function json(answer: SandboxAnswer): Response {
  return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), {
    status: answer.status,
    headers: { 'content-type': 'application/json', ...answer.headers },
  });
}

/**
 * Sentinel as the campaign has it: each incident as ARM returns it (the engine reads it again to look for data it waited
 * for); comments and labels are dropped (reporting is best effort and not what the campaign proves).
 */
function campaignSentinel(incidents: ReadonlyMap<string, Record<string, unknown>>): SentinelIncidents {
  return {
    incidentWithEntities: async (parts) => {
      const incident = incidents.get(parts.incidentName);
      if (!incident) throw new Error(`no incident ${parts.incidentName} in the campaign`);
      return structuredClone(incident);
    },
    incidentStatus: async () => ({ status: 'Active' }),
    comment: async () => undefined,
    label: async () => undefined,
    // The campaign runs no sweeps.
    incidentsPage: async () => ({ incidents: [] }),
  };
}

const INCIDENTS_AT =
  '/subscriptions/0b8a3f7e-1c55-4a1e-9d5b-2f0c6c1b7d21/resourceGroups/rg-siem/providers/Microsoft.OperationalInsights/workspaces/law-sentinel/providers/Microsoft.SecurityInsights/Incidents/';

/**
 * The incident as ARM returns it, its entities read by the engine's own normalizer (so names are bounded where they
 * enter, as from a real payload): each user and device by id and its own name, and each disguise by one principal's id
 * under another's name.
 */
function armIncidentFor(incident: Schedule['incidents'][number], index: number): Record<string, unknown> {
  const long = (name: string, oversized: boolean) => (oversized ? `${name}${'x'.repeat(40 * 1024)}` : name);
  const account = (id: number, named: number, oversized = false) => ({
    kind: 'Account',
    properties: {
      aadUserId: USERS[id % USERS.length],
      accountName: USER_NAMES[named % USER_NAMES.length],
      upnSuffix: 'contoso.com',
      friendlyName: long(USER_NAMES[named % USER_NAMES.length] as string, oversized),
    },
  });
  const host = (id: number, named: number, oversized = false) => ({
    kind: 'Host',
    properties: {
      hostName: long(DEVICE_NAMES[named % DEVICE_NAMES.length] as string, oversized),
      dnsDomain: 'contoso.com',
      additionalData: { MdatpDeviceId: DEVICES[id % DEVICES.length] },
    },
  });
  const relatedEntities = [
    ...[...new Set(incident.users)].map((u) => account(u, u)),
    ...[...new Set(incident.devices)].map((d) => host(d, d)),
    ...(incident.disguises ?? []).map((d) => (d.kind === 'user' ? account(d.target, d.namedAs, d.oversized) : host(d.target, d.namedAs, d.oversized))),
  ];
  const name = `campaign-${index}`;
  return {
    id: `${INCIDENTS_AT}${name}`,
    name,
    properties: { title: `campaign incident ${index}`, severity: 'High', status: 'New', additionalData: { tactics: ['CredentialAccess'] }, relatedEntities },
  };
}

/** Read from ARM without a fault, against a tenant no action has touched: the incident's entities with all their data. */
function fetchFrom(tenant: SandboxTenant): typeof fetch {
  return inProcessFetch(tenant, new FaultCursor<ApiFault>([], 'ok'), []) as typeof fetch;
}

/**
 * What the policy would do with every incident's data read (a fault-free enrichment of a tenant no action has touched):
 * the actions the campaign must find acted on, held or refused, never dropped.
 */
async function wantedWithAllData(incidents: readonly Record<string, unknown>[], policy: CompiledPolicy, settings: Parameters<typeof createDefenderDevices>[0]) {
  const wanted = new Map<string, string>();
  const realFetch = globalThis.fetch;
  globalThis.fetch = fetchFrom(new SandboxTenant());
  try {
    const context = {
      directory: await createGraphDirectory(settings, async () => undefined, STATIC_CREDENTIAL),
      devices: await createDefenderDevices(settings, async () => undefined, STATIC_CREDENTIAL),
    };
    const enricher = new Enricher(async () => context);
    for (const incident of incidents) {
      const decision = decide(await enricher.enrich(normalizeSentinelPayload(incident), policy.groupsOfInterest), policy);
      for (const action of decision.actions) wanted.set(action.idempotencyKey, `${action.kind} by ${action.ruleId}`);
      for (const held of decision.skipped) if (held.reason === 'needs-approval' && held.idempotencyKey) wanted.set(held.idempotencyKey, `${held.kind} held`);
    }
  } finally {
    globalThis.fetch = realFetch;
  }
  return wanted;
}

/**
 * A command someone allowed to send writes from a delivered one, or undefined for a look: by turns, the same action's
 * key on another principal of its type, and the undo of its action (or the action again) under a key of its own.
 */
function forge(message: QueueMessage, n: number): ActionCommand | undefined {
  if (!('idempotencyKey' in message)) return undefined;
  if (n % 2 === 0) {
    const others: readonly string[] = message.target.type === 'user' ? USERS : DEVICES;
    const id = others[(others.indexOf(message.target.id ?? '') + 1) % others.length] as string;
    return { ...message, target: { type: message.target.type, id } as ActionTarget };
  }
  const kind = ACTIONS[message.kind].rollback ?? message.kind;
  const key = idempotencyKeys({ subject: `forged-${n}` })(kind, targetKeyPart(message.target.id ?? 'none'));
  const source = { type: 'manual' as const, subject: 'forged', rollbackOf: message.idempotencyKey };
  return { ...message, id: key, idempotencyKey: key, kind, params: {}, source, attempt: 0 };
}

function directCommand(spec: Schedule['direct'][number], index: number, at: string): ActionCommand {
  const device = spec.kind === 'isolateDevice';
  const target: ActionTarget = device
    ? { type: 'device', id: DEVICES[spec.target % DEVICES.length] as string, ...(spec.malformed && { hostName: 'h'.repeat(300) }) }
    : { type: 'user', id: USERS[spec.target % USERS.length] as string, ...(spec.malformed && { displayName: 'd'.repeat(300) }) };
  const subject = `campaign-direct-${index}`;
  const key = idempotencyKeys({ subject })(spec.kind, targetKeyPart(target.id as string));
  return {
    id: key,
    idempotencyKey: key,
    kind: spec.kind,
    target,
    params: device ? { isolationType: 'Full' } : {},
    reason: 'campaign: planned under an older policy',
    mode: 'enforce',
    source: { type: 'incident', subject },
    attempt: 0,
    createdAt: at,
  };
}

/** Run one schedule to quiescence and judge it. */
export async function runSchedule(schedule: Schedule): Promise<Outcome> {
  const clock = { now: Date.parse('2026-11-28T12:00:00.000Z') };
  const random = prng(schedule.seed);
  const tenant = new SandboxTenant();
  tenant.now = () => clock.now;
  tenant.actionCompletionMs = 20_000;
  const pimBefore = tenant.roleAssignments.filter((a) => a.principalId === DEMO.megan).length;
  const api = new FaultCursor<ApiFault>(schedule.apiFaults, 'ok');
  const ledgerFaults = new FaultCursor<LedgerFault>(schedule.ledgerFaults, 'ok');
  const deliveries = new FaultCursor<DeliveryFault>(schedule.deliveryFaults, 'ok');
  const sends = new FaultCursor<boolean>(schedule.sendFaults, false);
  const budgets = new FaultCursor<BudgetFault>(schedule.budgetFaults ?? [], 'ok');
  const calls: Array<{ method: string; path: string; status: number; body: unknown }> = [];
  const broker = new SimBroker(clock, sends);
  const ledger = new FaultyLedger(new MemoryLedger(), ledgerFaults);
  const shared = new MemorySharedState();
  const pacer = new Pacer(
    shared,
    { ...DEFAULT_API_BUDGETS, ...everyDefenderApi(schedule.defenderBudget ? [schedule.defenderBudget] : []) },
    {
      now: () => clock.now,
      // Waiting is time passing on the simulated clock.
      sleep: async (ms) => void (clock.now += ms),
      maxInlineWaitMs: 0,
    },
  );
  const endpoints = { graph: SIM_ORIGIN, defender: SIM_ORIGIN, arm: SIM_ORIGIN };
  const settings = { endpoints, authorityHost: SIM_ORIGIN, cloud: 'AzurePublicCloud' as const };
  const policy = compilePolicy(parsePolicy(RISK_CAMPAIGN_POLICY, 'campaign policy'));
  const incidents = schedule.incidents.map(armIncidentFor);
  const wanted = schedule.enrich ? await wantedWithAllData(incidents, policy, settings) : new Map<string, string>();

  const realFetch = globalThis.fetch;
  globalThis.fetch = inProcessFetch(tenant, api, calls) as typeof fetch;
  try {
    const pace = (which: Parameters<Pacer['take']>[0]) => pacer.take(which);
    // Enrichment's reads may find their budget spent: held back by the engine itself, for longer than a request waits.
    const spendable = async (which: Parameters<Pacer['take']>[0]) => {
      if (budgets.next() === 'spent') throw new EnginePaced(which, `paced by the engine: the ${which} budget is spent (campaign)`, 30_000);
      return pacer.take(which);
    };
    const context = {
      directory: await createGraphDirectory(settings, pace, STATIC_CREDENTIAL),
      // Batched as composition wires it, on the simulated clock.
      devices: new BatchedDevices(await createDefenderDevices(settings, pace, STATIC_CREDENTIAL), { now: () => clock.now }),
      incidents: campaignSentinel(new Map(incidents.map((incident) => [incident.name as string, incident]))),
    };
    const enrichContext = {
      ...context,
      directory: await createGraphDirectory(settings, spendable, STATIC_CREDENTIAL),
      devices: new BatchedDevices(await createDefenderDevices(settings, spendable, STATIC_CREDENTIAL), { now: () => clock.now }),
    };
    const { engine, worker, deadLetters, analysts } = assemble({
      policy,
      ledger,
      queue: broker,
      shared,
      modeOverride: 'enforce',
      now: () => new Date(clock.now),
      log: logger().child({ campaign: schedule.seed }),
      executors: EXECUTORS,
      executionContext: async () => context,
      random,
      pacer,
      timings: LIFECYCLE_TIMINGS,
      ...(schedule.enrich && {
        enrich: (signal: Signal) =>
          new Enricher(
            async () => enrichContext,
            () => clock.now,
            async (ms) => void (clock.now += ms),
          ).enrich(signal, []),
      }),
    });

    // The relay: submit each incident, and on any failure (503, a crash) try again, as a Logic App's retry policy does.
    const at = new Date(clock.now).toISOString();
    const keys = new Set<string>();
    for (const incident of incidents) {
      for (let tries = 0; ; tries++) {
        try {
          const { decision } = await engine.submit(normalizeSentinelPayload(structuredClone(incident)), 'campaign relay');
          for (const action of decision.actions) keys.add(action.idempotencyKey);
          for (const skip of decision.skipped) if (skip.idempotencyKey && skip.reason !== 'duplicate') keys.add(skip.idempotencyKey);
          for (const waiting of decision.waiting) keys.add(waiting.idempotencyKey);
          break;
        } catch (error) {
          if (tries > 20) throw new Error(`the relay gave up: ${(error as Error).message}`);
        }
      }
    }
    for (const [i, spec] of schedule.direct.entries()) {
      const command = directCommand(spec, i, at);
      await ledger.inner.create({ ...command, key: command.idempotencyKey, state: 'planned', createdAt: at, by: 'campaign' });
      for (let tries = 0; ; tries++) {
        try {
          await broker.send([command]);
          break;
        } catch (error) {
          if (tries > 20) throw error;
        }
      }
      keys.add(command.idempotencyKey);
    }

    // The Functions host: deliver what is due, `concurrency` at a time, in an order the seed picks.
    let delivered = 0;
    const forged: Array<{ key: string; made: boolean; outcome: Promise<string> }> = [];
    const analystSteps = [...(schedule.analysts ?? [])].sort((a, b) => a.atStep - b.atStep);
    const analystAct = async (step: AnalystStep): Promise<void> => {
      const all = await ledger.inner.list();
      const eligible =
        step.op === 'rollback'
          ? all.filter((e) => e.state === 'succeeded' && (e.kind === 'disableUser' || e.kind === 'isolateDevice'))
          : all.filter((e) => e.state === 'pending-approval');
      const entry = eligible[step.pick % Math.max(1, eligible.length)];
      if (!entry) return;
      const [a, b] = [
        { objectId: ANALYSTS[0], name: 'analyst a' },
        { objectId: ANALYSTS[1], name: 'analyst b' },
      ];
      const once = async (run: () => Promise<unknown>) => {
        for (let tries = 0; tries < 20; tries++) {
          try {
            return await run();
          } catch (error) {
            // A refusal is an answer (409: someone else decided first, or it is no longer held); anything else, click again.
            if (error instanceof RefusedError) return undefined;
          }
        }
        throw new Error(`an analyst gave up on ${step.op} ${entry.key}`);
      };
      if (step.op === 'approve') await once(() => analysts.approve(entry.key, a, 'approved in the campaign'));
      else if (step.op === 'approveTwice')
        await Promise.all([once(() => analysts.approve(entry.key, a, 'first')), once(() => analysts.approve(entry.key, b, 'second'))]);
      else if (step.op === 'deny') await once(() => analysts.deny(entry.key, b, 'denied in the campaign'));
      else await once(async () => keys.add(((await engine.rollback(entry.key, a, 'rolled back in the campaign')).entry?.key ?? entry.key) as string));
    };
    for (let step = 0; step < 5000; step++) {
      while (analystSteps.length > 0 && (analystSteps[0] as AnalystStep).atStep <= step) await analystAct(analystSteps.shift() as AnalystStep);
      const due = broker.pending.filter((m) => m.availableAt <= clock.now);
      if (due.length === 0) {
        if (broker.pending.length === 0) break;
        clock.now = Math.min(...broker.pending.map((m) => m.availableAt));
        continue;
      }
      const batch: SimMessage[] = [];
      while (batch.length < schedule.concurrency && due.length > 0) batch.push(...due.splice(Math.floor(random() * due.length), 1));
      const runs: Array<Promise<void>> = [];
      for (const message of batch) {
        message.deliveryCount++;
        message.availableAt = clock.now + LOCK_MS; // locked
        const fault = deliveries.next();
        const deliver = () =>
          worker.handleMessage(JSON.parse(message.text), { messageId: message.messageId, deliveryCount: message.deliveryCount, enqueuedTimeUtc: at });
        // A lost lock: the broker hands the same message to a second consumer while the first still works on it.
        const handlers = fault === 'duplicate' ? [deliver(), deliver()] : [deliver()];
        const forgery = fault === 'forged' ? forge(JSON.parse(message.text) as QueueMessage, forged.length) : undefined;
        if (forgery) {
          // Settled or not, the forged message is the sender's: only what the worker made of it is judged.
          const outcome = worker.handleMessage(forgery, { messageId: `forged-${forged.length}`, deliveryCount: 1, enqueuedTimeUtc: at });
          const made = forgery.idempotencyKey !== (JSON.parse(message.text) as ActionCommand).idempotencyKey;
          forged.push({ key: forgery.idempotencyKey, made, outcome: outcome.then((o) => o.outcome).catch(() => 'threw') });
        }
        delivered += handlers.length;
        runs.push(
          Promise.allSettled(handlers).then(([first]) => {
            const index = broker.pending.indexOf(message);
            if (first?.status === 'fulfilled' && fault !== 'lost-settle') {
              if (index >= 0) broker.pending.splice(index, 1); // completed
            } else if (first?.status === 'rejected' && message.deliveryCount >= MAX_DELIVERIES) {
              if (index >= 0) broker.pending.splice(index, 1);
              broker.deadLetters.push({ ...message, reason: 'MaxDeliveryCountExceeded' });
            } else if (first?.status === 'rejected') {
              message.availableAt = clock.now; // abandoned: redelivered at once
            }
            // lost-settle: the completion never reached the broker; the lock runs out and it comes back
          }),
        );
      }
      await Promise.all(runs);
      clock.now += 10;
    }
    // The dead-letter reconciler's timer.
    await deadLetters.reconcile(1000);

    const entries = await ledger.inner.list();
    const byKey = new Map(entries.map((e) => [e.key, e]));
    const settled = (entry: LedgerEntry | undefined) => entry !== undefined && (FINAL.has(entry.state) || (entry.state === HELD && Boolean(entry.stateReason)));
    // A forged command is refused, whatever it names, and none gets an entry of its own.
    const forgedActed: string[] = [];
    for (const { key, made, outcome } of forged) {
      const answer = await outcome;
      // Refused, or unreadable (a forgery of a malformed command), or thrown (abandoned: the sender's to send again).
      if (!['refused', 'poison', 'threw'].includes(answer)) forgedActed.push(`${key}: ${answer}`);
      if (made && byKey.has(key)) forgedActed.push(`${key}: in the ledger`);
    }

    // Every action the relay and the analysts were told of, and every entry the ledger holds, reached an end.
    const lost = [...new Set([...keys, ...byKey.keys()])]
      .filter((key) => !settled(byKey.get(key)))
      .map((key) => `${key}:${byKey.get(key)?.state ?? 'missing'}`);
    if (broker.pending.length > 0) lost.push(`${broker.pending.length} messages still on the queue`);

    const duplicates: string[] = [];
    const unapproved: string[] = [];
    const posts = new Map<string, number>();
    for (const action of tenant.machineActions) {
      const key = /Sentinel Responder (\S+?)#/.exec(action.requestorComment ?? '')?.[1] ?? 'unknown';
      posts.set(`${action.type}:${key}`, (posts.get(`${action.type}:${key}`) ?? 0) + 1);
    }
    for (const [what, count] of posts) if (count > 1) duplicates.push(`${what} posted ${count} times`);
    const pimRemovals = calls.filter(
      (c) => c.path.endsWith('roleAssignmentScheduleRequests') && c.status < 400 && (c.body as { action?: string })?.action === 'adminRemove',
    );
    if (pimRemovals.length > pimBefore) duplicates.push(`PIM adminRemove succeeded ${pimRemovals.length} times for ${pimBefore} assignments`);

    // Nothing held for a human ran without an analyst's approval before it (a run the worker held again wrote nothing).
    for (const entry of entries) {
      if (entry.history[0]?.state !== HELD) continue;
      const approvals = entry.history.filter((event) => event.state === 'planned' && event.note?.startsWith('approved by')).map((event) => event.at);
      const ran = entry.attempts.filter((attempt) => attempt.outcome !== 'held');
      if (ran.some((attempt) => !approvals.some((at) => at <= attempt.at))) unapproved.push(`${entry.key} ran without an approval before it`);
    }

    const protectedTouched = calls
      .filter((c) => c.method !== 'GET' && c.status < 400 && (c.path.includes(DEMO.breakglass) || c.path.includes(DEMO_DEVICES.dc01)))
      .map((c) => `${c.method} ${c.path}`);
    if (tenant.users.get(DEMO.breakglass)?.accountEnabled === false) protectedTouched.push('break-glass account disabled');

    // Nothing a rule would have done with all the data read is missing, or ended as not needed.
    const dropped = [...wanted]
      .filter(([key]) => byKey.get(key) === undefined || byKey.get(key)?.state === 'not-needed')
      .map(([key, what]) => `${key} (${what}): ${byKey.get(key)?.state ?? 'not in the ledger'}`);
    const waited = entries.filter((entry) => entry.history.some((event) => event.state === 'waiting'));

    return {
      entries,
      lost,
      duplicates,
      protectedTouched,
      unapproved,
      dropped,
      forgedActed,
      forged: forged.length,
      waited: waited.length,
      heldAfterWaiting: waited.filter((entry) => entry.state === HELD).length,
      deliveries: delivered,
      faultsFired: api.fired + ledgerFaults.fired + deliveries.fired + sends.fired + budgets.fired,
    };
  } finally {
    globalThis.fetch = realFetch;
  }
}
