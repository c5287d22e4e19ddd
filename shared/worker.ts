import { randomUUID } from 'node:crypto';
import type { ActionCommand } from './actions/command';
import { againstLedger, commandFor, parseActionCommand, unqueueable } from './actions/command';
import type { ExecutionOutcome } from './actions/executor';
import { IDEMPOTENCY_KEY_PATTERN } from './actions/idempotency';
import {
  afterExecution,
  claimStep,
  deferral,
  deferred,
  holding,
  isRunning,
  releaseDevice,
  renewal,
  renewalIntervalMs,
  takeDevice,
  type DeviceLease,
  type LedgerWrite,
  type LifecycleTimings,
  type RunningEntry,
  type Step,
  type WorkerResult,
} from './actions/lifecycle';
import { reportedCommand, type ReportedAction, type ReportedState } from './actions/report';
import { targetLabel, type DeviceTarget } from './actions/target';
import { keepAlive, type RenewalResult } from './coordination/keepAlive';
import type { SharedState } from './coordination/sharedState';
import { holdWaiting, markDeadLettered } from './deadLetters';
import type { Submission } from './engine';
import { InputError } from './errors';
import { bodyText } from './json';
import { attemptCount, LedgerConflictError, type ActionLedger, type LedgerEntry } from './ledger/ledger';
import type { Logger } from './log';
import type { Metrics } from './metrics';
import type { QueueDelivery, ActionQueue } from './queue/queue';
import { isReevaluation, parseReevaluation, parseRiskReevaluation, type Reevaluation } from './queue/reevaluation';
import type { SentinelIncidents } from './clients/sentinel';
import { isRecord } from './signals/fields';
import { riskSignalOf } from './signals/risk';
import { normalizeSentinelPayload } from './signals/sentinel';
import type { Signal } from './signals/signal';

export { RUNNING_LEASE_MS } from './actions/lifecycle';

export interface WorkerOutcome {
  key?: string;
  outcome: WorkerResult;
  detail: string;
}

/** What the worker uses: the ledger and queue it moves actions through, and the engine's parts it calls. */
export interface WorkerDeps {
  ledger: ActionLedger;
  queue: ActionQueue;
  /** Where device leases live, shared by every instance. */
  shared: SharedState;
  now: () => Date;
  log: Logger;
  /** For retry and deferral jitter; injected so tests are deterministic. */
  random?: () => number;
  timings: LifecycleTimings;
  /** Carry a command out now: mode, pacing, the target's checks, the executor (shared/actions/execute.ts). */
  execute(command: ActionCommand, log: Logger): Promise<ExecutionOutcome>;
  /** Report an action's outcome on its incident (shared/actions/report.ts). */
  report(action: ReportedAction, state: ReportedState, detail: string, attempts: number, log: Logger): Promise<void>;
  /** The incident, as ARM has it now, for a re-evaluation. */
  incidents(): Promise<SentinelIncidents>;
  /** The engine's submission, for a re-evaluated incident: which look it is, and why. */
  submit(signal: Signal, by: string, log: Logger, reevaluation: Reevaluation): Promise<Submission>;
  /** Retries and pacing deferrals are counted here; absent, nothing is. */
  metrics?: Pick<Metrics, 'retryScheduled' | 'pacingWait'>;
}

/** How many times a delivery reads an entry again after another writer moved it, before it lets the broker redeliver. */
const CLAIM_TRIES = 5;

/**
 * The worker: what the queue-triggered function runs for each message. An ActionCommand is claimed in the ledger,
 * carried out, recorded, reported on its incident, and followed up or retried through the queue; an incident
 * re-evaluation goes back through the engine. What each outcome leads to is decided in shared/actions/lifecycle.ts.
 */
export class ActionWorker {
  constructor(private readonly deps: WorkerDeps) {}

  /** The worker's entry: an incident to look at again, or an action to take. */
  async handleMessage(body: unknown, delivery: QueueDelivery, log: Logger = this.deps.log): Promise<WorkerOutcome> {
    return isReevaluation(body) ? this.reevaluate(body, delivery, log) : this.runCommand(body, delivery, log);
  }

  /** Load, check against the ledger, claim, carry out as recorded, record: one delivered ActionCommand. */
  async runCommand(body: unknown, delivery: QueueDelivery, log: Logger = this.deps.log): Promise<WorkerOutcome> {
    const parsed = await this.parseOrDeadLetter(() => parseActionCommand(body), 'an ActionCommand', body, delivery, log);
    if (parsed.status === 'refused') return parsed.outcome;
    const message = parsed.value;
    const key = message.idempotencyKey;
    const messageLog = log.child({ actionId: key, attempt: message.attempt });
    const started = this.deps.now().toISOString();
    const recorded = await this.deps.ledger.get(key);
    const verdict = againstLedger(message, recorded);
    if ('refuse' in verdict) {
      // An entry the message disagrees with is left as it is: ending it would let any sender cancel an action by naming
      // its key, and its own message (or the stuckActions sweep's resend, made from the entry) still carries it out.
      const incidentArmId = recorded?.source.incidentArmId;
      return this.refuse(body, delivery, { reason: verdict.refuse, why: verdict.why, key, ...(incidentArmId && { incidentArmId }) }, messageLog);
    }
    const { carry: command, entry: first } = verdict;
    const actionLog = messageLog.child({ kind: command.kind, incidentId: command.source.incidentArmId ?? command.source.subject });

    const claim = await this.claim(first, delivery, started);
    if (claim.status === 'waiting') {
      // Another delivery holds it. It may be alive (a duplicate delivery) or dead (its process crashed after claiming):
      // come back when its lease runs out, and take over then if it is still not done. Dropping this delivery instead
      // would lose the action whenever the holder had crashed.
      await this.schedule(deferred(command, claim.until));
      const detail = `running in another delivery until ${claim.until.toISOString()}`;
      actionLog.info({ outcome: 'deferred', until: claim.until.toISOString() }, 'running in another delivery: looking again when its lease ends');
      return { key: first.key, outcome: 'deferred', detail };
    }
    if (claim.status === 'done') return { key: first.key, outcome: 'duplicate', detail: claim.detail };
    const { held } = claim;

    return this.holdingDevice(command, actionLog, async (busy) => {
      const step = await this.keepingClaim(held, actionLog, async () =>
        busy
          ? deferral(
              command,
              this.deps.now(),
              this.deps.timings.deviceBusyWaitMs,
              `another action on ${targetLabel(command.target)} is in flight (${busy.holder})`,
              this.jitter(),
              this.deps.timings,
            )
          : this.afterExecution(held.entry, command, await this.deps.execute(command, actionLog), started),
      );
      return this.apply(held, command, step, started, actionLog);
    });
  }

  /** What follows an execution (lifecycle's afterExecution), its retry or pacing deferral counted. */
  private afterExecution(entry: RunningEntry, command: ActionCommand, outcome: ExecutionOutcome, started: string): Step {
    const now = this.deps.now();
    const step = afterExecution(entry, command, outcome, { started, now }, this.deps.timings, this.jitter());
    const { metrics } = this.deps;
    if (step.result === 'retrying')
      metrics?.retryScheduled(command.kind, outcome.outcome === 'failed' && outcome.class !== 'paced' ? outcome.status : undefined);
    if (step.result === 'deferred' && step.schedule && outcome.outcome === 'failed' && outcome.class === 'paced')
      metrics?.pacingWait(outcome.api, Math.max(0, step.schedule.at.getTime() - now.getTime()) / 1000, 'deferred');
    return step;
  }

  /**
   * Write the step's ledger transition, then schedule its message, then report. The ledger moves first: if the process
   * dies before the message is scheduled, the entry waits `queued` and a redelivery of this message claims it again
   * (executors read state first, so nothing is repeated); a message scheduled first could instead arrive while the
   * entry still looked `running` and be dropped as a duplicate. A claim another delivery took over records nothing.
   */
  private async apply(held: HeldClaim, command: ActionCommand, step: Step, at: string, log: Logger): Promise<WorkerOutcome> {
    const { write } = step;
    const key = held.entry.key;
    if (!(await this.record(held, write, at, log))) return { key, outcome: 'duplicate', detail: `not recorded: ${held.lost}` };
    if (step.schedule) await this.schedule(step.schedule);
    if (step.undid) await this.markRolledBack(step.undid, key, at);
    const status = write.patch?.attempts?.at(-1)?.status;
    log.info({ outcome: step.result, ...(status !== undefined && { status }), ...(step.schedule && { next: step.schedule.at.toISOString() }) }, step.detail);
    if (step.report)
      await this.deps.report(reportedCommand(command), step.report, step.detail, attemptCount(write.patch?.attempts ?? held.entry.attempts), log);
    return { key, outcome: step.result, detail: step.detail };
  }

  /**
   * The step's transition, under this delivery's claim (ETag-guarded). A conflict is judged by lifecycle's `holding`:
   * this claim's own renewal moved the ETag (write again), or another delivery holds the action now (answers false).
   */
  private async record(held: HeldClaim, write: LedgerWrite, at: string, log: Logger): Promise<boolean> {
    for (let tries = 0; tries < CLAIM_TRIES && held.lost === undefined; tries++) {
      try {
        await this.deps.ledger.transition(held.entry.key, held.entry.etag, write.to, { by: 'worker', at, note: write.note }, write.patch);
        return true;
      } catch (error) {
        if (!(error instanceof LedgerConflictError)) throw error;
        await this.readClaimAgain(held, log);
      }
    }
    if (held.lost !== undefined) return false;
    throw new Error(`could not record ${held.entry.key}: it kept changing`); // abandon: the broker redelivers
  }

  /**
   * Make this delivery the one that runs the action, or say why not (lifecycle's claimStep). ETag-guarded; a conflict
   * means the entry moved (the submitter marked it queued, another delivery claimed it): read it again, judge afresh.
   */
  private async claim(first: LedgerEntry, delivery: QueueDelivery, at: string): Promise<Claimed> {
    let entry = first;
    // Unique to this claim: two deliveries of one message (a broker's duplicate) must not take each other's lease as their own.
    const holder = `delivery ${delivery.deliveryCount} of ${delivery.messageId} (${randomUUID().slice(0, 8)})`;
    for (let tries = 0; tries < CLAIM_TRIES; tries++) {
      const step = claimStep(entry, new Date(at), this.deps.timings, holder);
      if (step.claim === 'wait') return { status: 'waiting', until: step.until };
      if (step.claim === 'done') return { status: 'done', detail: step.detail };
      try {
        const lease = step.to === 'running' ? { lease: step.lease } : undefined;
        entry = await this.deps.ledger.transition(entry.key, entry.etag, step.to, { by: 'worker', at, note: step.note }, lease);
        if (isRunning(entry)) return { status: 'claimed', held: { entry, holder, claimedAt: new Date(at) } };
      } catch (error) {
        if (!(error instanceof LedgerConflictError)) throw error;
        entry = (await this.deps.ledger.get(entry.key)) ?? entry;
      }
    }
    throw new Error(`could not claim ${entry.key}: it kept changing`); // abandon: the broker redelivers
  }

  /**
   * Run `work` with the claim kept alive: its lease is renewed every third of a lease, so a short lease (a crashed
   * instance's actions are taken over soon) does not cut a long execution short. Renewals stop before `work`'s result
   * is recorded, so they cannot race the final write for the ETag.
   */
  private async keepingClaim<T>(held: HeldClaim, log: Logger, work: () => Promise<T>): Promise<T> {
    const renewing = keepAlive(() => this.renewClaim(held, log), renewalIntervalMs(this.deps.timings.leaseMs), renewalFailed(log, 'the claim'));
    try {
      return await work();
    } finally {
      await renewing.stop();
    }
  }

  /** One keep-alive tick of the claim (lifecycle's `renewal`): extend its lease, or learn that it is no longer this delivery's. */
  private async renewClaim(held: HeldClaim, log: Logger): Promise<RenewalResult> {
    const next = renewal(held.holder, held.claimedAt, this.deps.now(), this.deps.timings);
    if (!next.renew) {
      log.warn({ holder: held.holder }, next.why);
      return 'stop';
    }
    try {
      const etag = await this.deps.ledger.renewLease(held.entry.key, held.entry.etag, next.lease);
      held.entry = { ...held.entry, lease: next.lease, etag };
      return 'renewed';
    } catch (error) {
      if (!(error instanceof LedgerConflictError)) throw error;
      return (await this.readClaimAgain(held, log)) ? 'renewed' : 'stop';
    }
  }

  /** After a refused write: go on with the entry as read if the claim is still this delivery's, else mark the claim lost. */
  private async readClaimAgain(held: HeldClaim, log: Logger): Promise<boolean> {
    const now = holding(await this.deps.ledger.get(held.entry.key), held.holder);
    if (now.held) {
      held.entry = now.entry;
      return true;
    }
    held.lost = now.detail;
    log.warn({ holder: held.holder }, `claim lost (${now.detail}): this delivery's outcome will not be recorded`);
    return false;
  }

  /**
   * One containment in flight per device: two actions racing between "read its machine actions" and "post" could
   * both post. The lease lives in the shared records, so it holds across instances, and is kept alive like the claim
   * while `run` runs; `run` learns who holds it, if another action does.
   */
  private async holdingDevice<T>(command: ActionCommand, log: Logger, run: (busy: DeviceLease | undefined) => Promise<T>): Promise<T> {
    if (command.target.type !== 'device') return run(undefined);
    const device = deviceLeaseKey(command.target);
    const holder = command.idempotencyKey;
    const takenAt = this.deps.now();
    const busy = await this.takeDevice(device, holder);
    if (busy) return run(busy);
    const renewing = keepAlive(
      async () => {
        // Kept no longer than a claim is (lifecycle's `renewal`): past that, the execution is given up on.
        if (!renewal(holder, takenAt, this.deps.now(), this.deps.timings).renew) return 'stop';
        const taken = await this.takeDevice(device, holder);
        if (taken) log.warn({ device, holder: taken.holder }, 'the device lease lapsed and another action holds it now');
        return taken ? 'stop' : 'renewed';
      },
      renewalIntervalMs(this.deps.timings.leaseMs),
      renewalFailed(log, 'the device lease'),
    );
    try {
      return await run(undefined);
    } finally {
      await renewing.stop();
      await this.deps.shared.update<DeviceLease, void>(device, (held) => ({ next: releaseDevice(held, holder), result: undefined }));
    }
  }

  /** Take (or renew) the device's lease for `holder`; answers the other holder's lease if the device is busy. */
  private takeDevice(device: string, holder: string): Promise<DeviceLease | undefined> {
    return this.deps.shared.update<DeviceLease, DeviceLease | undefined>(device, (held) => {
      const { next, busy } = takeDevice(held, holder, this.deps.now().getTime(), this.deps.timings.leaseMs);
      return { next, result: busy };
    });
  }

  /**
   * A risk record whose decision waited for data: read the record again (it travels with the look) and submit it as it
   * came. A record that no longer reads as the same risk is refused, and what waited for it goes to a human.
   */
  private async reevaluateRisk(body: unknown, delivery: QueueDelivery, log: Logger): Promise<WorkerOutcome> {
    const message = await this.parseOrDeadLetter(() => parseRiskReevaluation(body), 'a risk re-evaluation', body, delivery, log);
    if (message.status === 'refused') return message.outcome;
    const { subject, source, record, attempt, waitingFor } = message.value;
    // The ledger, not the message, says what waits and for whom: a look with nothing waiting has nothing to look for.
    const waiting = await this.deps.ledger.list({ subject, state: 'waiting' });
    if (waiting.length === 0) return { outcome: 'succeeded', detail: `nothing waits on ${subject} any more: nothing to look for` };
    const read = () => waitedFor(riskSignalOf(record, subject), source, waiting);
    const signal = await this.parseOrDeadLetter(read, 'a readable risk record', record, delivery, log);
    if (signal.status === 'refused') {
      const why = `held for a human: the risk record could not be read again to look for its data: ${signal.outcome.detail}`;
      for (const entry of await holdWaiting(this.deps.ledger, { subject }, why, this.deps.now().toISOString(), 'worker'))
        await this.deps.report(entry, 'held', why, attemptCount(entry.attempts), log);
      return signal.outcome;
    }
    const { decision } = await this.deps.submit(signal.value, 'engine (re-evaluation)', log, { reason: 'waitingForData', attempt, waitingFor });
    return { outcome: 'succeeded', detail: `re-evaluated ${subject}: ${decision.summary}` };
  }

  /** An incident to evaluate again: read it from ARM as it is now, and submit it as the relay would. */
  private async reevaluate(body: unknown, delivery: QueueDelivery, log: Logger): Promise<WorkerOutcome> {
    if (isRecord(body) && body.type === 'reevaluateRisk') return this.reevaluateRisk(body, delivery, log);
    const message = await this.parseOrDeadLetter(() => parseReevaluation(body), 'a re-evaluation', body, delivery, log);
    if (message.status === 'refused') return message.outcome;
    const { incidentArmId, incident: parts, reason, attempt, waitingFor } = message.value;
    // A failure to read throws: the broker redelivers the message, and the re-evaluation is not lost. An incident that
    // cannot be read as one is recorded with the reason instead: ten redeliveries would not make it readable.
    const incident = await (await this.deps.incidents()).incidentWithEntities(parts);
    const signal = await this.parseOrDeadLetter(() => normalizeSentinelPayload(incident), 'a readable incident', incident, delivery, log);
    if (signal.status === 'refused') {
      // No look will read it again: what waited for its data goes to a human.
      if (reason === 'waitingForData') {
        const why = `held for a human: the incident could not be read again to look for its data: ${signal.outcome.detail}`;
        for (const entry of await holdWaiting(this.deps.ledger, { incident: incidentArmId }, why, this.deps.now().toISOString(), 'worker'))
          await this.deps.report(entry, 'held', why, attemptCount(entry.attempts), log);
      }
      return signal.outcome;
    }
    const { decision } = await this.deps.submit(signal.value, 'engine (re-evaluation)', log, {
      reason,
      attempt,
      ...(waitingFor !== undefined && { waitingFor }),
    });
    return { outcome: 'succeeded', detail: `re-evaluated ${incidentArmId}: ${decision.summary}` };
  }

  /**
   * A message the schema refuses is dead-lettered at once, into the ledger's dead-letter records, and completed: ten
   * quick redeliveries would not make it valid, and the Functions trigger in Node cannot dead-letter on the broker.
   */
  private async parseOrDeadLetter<T>(parse: () => T, what: string, body: unknown, delivery: QueueDelivery, log: Logger): Promise<Parsed<T>> {
    try {
      return { status: 'parsed', value: parse() };
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      log.error({ messageId: delivery.messageId, problem: error.message }, `dead-lettered: not ${what}`);
      const at = this.deps.now().toISOString();
      const why = `refused by the worker: not ${what}: ${error.message}`;
      const key = claimedKey(body);
      await this.recordRefusal(body, delivery, { reason: 'SchemaInvalid', why: `not ${what}: ${error.message}`, ...(key && { key }) }, at);
      const ended = key ? await this.endUncarriable(key, why, at) : undefined;
      if (ended) await this.deps.report(ended, 'failed', why, attemptCount(ended.attempts), log);
      return { status: 'refused', outcome: { ...(key && { key }), outcome: 'poison', detail: error.message } };
    }
  }

  /**
   * End, dead-lettered, the action a malformed message names if no message could carry it (its own command would be
   * refused too): it would wait `queued` for ever. One whose own command reads is left to it: a malformed copy is no
   * word on the action, and ending it would let any sender cancel it by naming its key.
   */
  private async endUncarriable(key: string, why: string, at: string): Promise<LedgerEntry | undefined> {
    const entry = await this.deps.ledger.get(key);
    if (!entry || unqueueable(commandFor(entry, at)) === undefined) return undefined;
    return markDeadLettered(this.deps.ledger, key, why, at);
  }

  /**
   * A command the ledger does not stand behind is no action of the engine's, whoever put it on the queue (anyone allowed
   * to send may have): nothing is carried out and no entry is made. It is kept with the worker's dead-letter records for
   * a human, and completed: a redelivery would be refused the same way.
   */
  private async refuse(body: unknown, delivery: QueueDelivery, refusal: Refusal, log: Logger): Promise<WorkerOutcome> {
    log.error({ messageId: delivery.messageId, reason: refusal.reason }, `refused: ${refusal.why}`);
    await this.recordRefusal(body, delivery, refusal, this.deps.now().toISOString());
    return { key: refusal.key, outcome: 'refused', detail: refusal.why };
  }

  /** A message the worker would not carry, as a dead-letter record: once per MessageId, however often it comes. */
  private async recordRefusal(body: unknown, delivery: QueueDelivery, refusal: Omit<Refusal, 'key'> & { key?: string }, at: string): Promise<void> {
    await this.deps.ledger.recordDeadLetter({
      messageId: delivery.messageId,
      at,
      by: 'worker',
      reason: refusal.reason,
      description: refusal.why,
      deliveryCount: delivery.deliveryCount,
      body: bodyText(body),
      ...(refusal.key && { actionKey: refusal.key }),
      ...(refusal.incidentArmId && { incidentArmId: refusal.incidentArmId }),
    });
  }

  /** The action a succeeded rollback undid ends `rolled-back`, naming it; one that moved on meanwhile is left. */
  private async markRolledBack(key: string, by: string, at: string): Promise<void> {
    for (let tries = 0; tries < CLAIM_TRIES; tries++) {
      const original = await this.deps.ledger.get(key);
      if (original?.state !== 'succeeded') return;
      try {
        const undone = await this.deps.ledger.transition(
          key,
          original.etag,
          'rolled-back',
          { by: 'worker', at, note: `rolled back by ${by}` },
          { rolledBackBy: by },
        );
        // The original's own comment on its incident says so (its id is derived from its key: rewritten, not added).
        await this.deps.report(undone, 'rolled-back', `rolled back by ${by}`, attemptCount(undone.attempts), this.deps.log);
        return;
      } catch (error) {
        if (!(error instanceof LedgerConflictError)) throw error;
      }
    }
  }

  private schedule({ command, at }: { command: ActionCommand; at: Date }): Promise<void> {
    return this.deps.queue.schedule(command, at);
  }

  private jitter(): number {
    return (this.deps.random ?? Math.random)();
  }
}

type Claimed = { status: 'claimed'; held: HeldClaim } | { status: 'waiting'; until: Date } | { status: 'done'; detail: string };

/** This delivery's claim while it runs: the entry as last written (its ETag moves with each renewal), and whether it was lost. */
interface HeldClaim {
  entry: RunningEntry;
  holder: string;
  claimedAt: Date;
  /** Set once another delivery holds the action (or it ended another way): then this one records nothing. */
  lost?: string;
}

/** A keep-alive's failed renewal: logged, and tried again at the next tick. */
function renewalFailed(log: Logger, what: string): (error: unknown) => void {
  return (error) => log.warn({ err: error }, `could not renew ${what}; trying again at the next renewal`);
}

type Parsed<T> = { status: 'parsed'; value: T } | { status: 'refused'; outcome: WorkerOutcome };

/**
 * Why the worker would not carry a message, as its dead-letter record says: its reason (a code), in words, the action
 * it names, and the incident the ledger (never the message) says that action is for.
 */
interface Refusal {
  reason: 'SchemaInvalid' | 'NoLedgerEntry' | 'LedgerMismatch';
  why: string;
  key: string;
  incidentArmId?: string;
}

/** The action key a message names, if it names one in the form keys take, however malformed the rest of it is. */
function claimedKey(body: unknown): string | undefined {
  const key = isRecord(body) ? body.idempotencyKey : undefined;
  return typeof key === 'string' && IDEMPOTENCY_KEY_PATTERN.test(key) ? key : undefined;
}

/** A device's lease key: its strongest identifier, lower-cased. */
function deviceLeaseKey(target: DeviceTarget): string {
  return `device:${(target.id ?? target.aadDeviceId ?? target.fqdn ?? target.hostName ?? '').toLowerCase()}`;
}

/**
 * The signal a risk look reads, if it is the one its waiting actions were decided on: the same users (a detection's
 * subject does not name its user). Its user's level is read again: a sweep's was read minutes ago, and the
 * message carrying it is no word of ID Protection's.
 */
function waitedFor(signal: Signal, source: 'risk' | 'sweep', waiting: readonly LedgerEntry[]): Signal {
  const users = new Set(waiting.filter((entry) => entry.target.type === 'user').map((entry) => entry.target.id?.toLowerCase()));
  const entities = signal.entities.map((entity) => {
    if (entity.kind !== 'account') return entity;
    if (entity.aadUserId === undefined || !users.has(entity.aadUserId.toLowerCase()))
      throw new InputError('record', `names ${entity.aadUserId ?? 'no user'}, not the user what waits is for`);
    const { userRisk: _stale, ...account } = entity;
    return account;
  });
  return { ...signal, source, entities };
}
