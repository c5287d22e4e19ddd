import type { ActionCommand } from './actions/command';
import { parseActionCommand } from './actions/command';
import { executeOnVerifiedTarget } from './actions/execute';
import type { ExecutionOutcome } from './actions/executor';
import { classifyFailure } from './actions/failure';
import { reportedCommand, reportOutcome, type ReportedAction, type ReportedState } from './actions/report';
import { RETRY_POLICY, retryDelayMs } from './actions/retryPolicy';
import { targetLabel, type DeviceTarget } from './actions/target';
import { ENGINE_PACED } from './coordination/pacer';
import type { EngineDeps, ResponderEngine } from './engine';
import { ConfigError, InputError } from './errors';
import { attemptCount, LedgerConflictError, type LedgerAttempt, type LedgerEntry } from './ledger/ledger';
import { IDEMPOTENCY_KEY_PATTERN } from './actions/idempotency';
import type { Logger } from './log';
import type { CompiledPolicy } from './policy/decide';
import type { Mode } from './policy/schema';
import type { QueueDelivery } from './queue/queue';
import { isReevaluation, parseReevaluation } from './queue/reevaluation';
import { parseIncidentArmId, type IncidentArmIdParts } from './signals/identifiers';
import { isRecord } from './signals/fields';
import { normalizeSentinelPayload } from './signals/sentinel';

export interface WorkerOutcome {
  key?: string;
  outcome: 'succeeded' | 'audited' | 'pending' | 'held' | 'retrying' | 'deferred' | 'failed' | 'blocked' | 'duplicate' | 'poison';
  detail: string;
}

/**
 * How long a claimed (`running`) action belongs to its delivery: Service Bus's longest automatic lock renewal and
 * host.json's functionTimeout, both 5 minutes. RESPONDER_RUNNING_LEASE_SECONDS changes it with them.
 */
export const RUNNING_LEASE_MS = 5 * 60_000;

/**
 * The worker: what the queue-triggered function runs for each message. An ActionCommand is claimed in the ledger,
 * re-checked against protection, executed by its executor, recorded, reported on its incident, and followed up or
 * retried through the queue; an incident re-evaluation goes back through the engine.
 */
export class ActionWorker {
  constructor(
    private readonly deps: EngineDeps,
    private readonly engine: ResponderEngine,
  ) {}

  /** How long a claim (and a device lease) holds before another delivery may take over: no handler outlives it. */
  private get leaseMs(): number {
    return this.deps.runningLeaseMs ?? RUNNING_LEASE_MS;
  }

  /** The worker's entry: an incident to look at again, or an action to take. */
  async handleMessage(body: unknown, delivery: QueueDelivery, log: Logger = this.deps.log): Promise<WorkerOutcome> {
    if (!isReevaluation(body)) return this.runCommand(body, delivery, log);
    const message = await this.parseOrDeadLetter(() => parseReevaluation(body), 'a re-evaluation', body, delivery, log);
    if ('outcome' in message) return message;
    const parts = parseIncidentArmId(message.incidentArmId) as IncidentArmIdParts;
    const { incidents } = await this.deps.executionContext();
    // A failure to read throws: the broker redelivers the message, and the re-evaluation is not lost. An incident that
    // cannot be read as one is recorded with the reason instead: ten redeliveries would not make it readable.
    const incident = await incidents.incidentWithEntities(parts);
    const signal = await this.parseOrDeadLetter(() => normalizeSentinelPayload(incident), 'a readable incident', incident, delivery, log);
    if ('outcome' in signal) return signal;
    const { decision } = await this.engine.submit(signal, 'engine (re-evaluation)', log, message.attempt);
    return { outcome: 'succeeded', detail: `re-evaluated ${message.incidentArmId}: ${decision.summary}` };
  }

  /**
   * The worker's step for one delivered message: validate, claim, resolve the target in the directory and check it
   * against the current policy, execute (the executor reads state first and writes nothing in audit mode), record,
   * schedule what comes next.
   */
  async runCommand(body: unknown, delivery: QueueDelivery, log: Logger = this.deps.log): Promise<WorkerOutcome> {
    const { ledger, now } = this.deps;
    const command = await this.parseOrDeadLetter(() => parseActionCommand(body), 'an ActionCommand', body, delivery, log);
    if ('outcome' in command) return command;
    const actionLog = log.child({
      actionId: command.id,
      kind: command.kind,
      incidentId: command.source.incidentArmId ?? command.source.subject,
      attempt: command.attempt,
    });
    const at = now().toISOString();
    let entry = (await ledger.get(command.idempotencyKey)) ?? (await ledger.create(entryFromCommand(command, at))).entry;

    const claim = await this.claim(entry, delivery, at);
    if (claim.heldUntil !== undefined) {
      // Another delivery holds it. It may be alive (a duplicate delivery) or dead (its process crashed after claiming):
      // come back when its lease runs out, and take over then if it is still not done. Dropping this delivery instead
      // would lose the action whenever the holder had crashed.
      await this.scheduleDeferred(command, new Date(claim.heldUntil));
      actionLog.info({ outcome: 'deferred', until: new Date(claim.heldUntil).toISOString() }, 'running in another delivery: looking again when its lease ends');
      return { key: entry.key, outcome: 'deferred', detail: `running in another delivery until ${new Date(claim.heldUntil).toISOString()}` };
    }
    if (claim.outcome) return claim.outcome;
    entry = claim.entry;

    // One containment in flight per device: two actions racing between "read its machine actions" and "post"
    // could both post. The lease lives in the shared records, so it holds across instances.
    const device = command.target.type === 'device' ? deviceLeaseKey(command.target) : undefined;
    if (device) {
      const nowMs = now().getTime();
      const lease = await this.deps.shared.update<DeviceLease, DeviceLease | undefined>(device, (held) =>
        held && held.holder !== command.idempotencyKey && held.until > nowMs
          ? { next: held, result: held }
          : { next: { holder: command.idempotencyKey, until: nowMs + this.leaseMs }, result: undefined },
      );
      if (lease) return this.defer(entry, command, at, 5000, `another action on ${targetLabel(command.target)} is in flight (${lease.holder})`, actionLog);
    }
    try {
      return await this.record(entry, command, await this.execute(command), at, actionLog);
    } finally {
      if (device)
        await this.deps.shared.update<DeviceLease, void>(device, (held) => ({
          next: held?.holder === command.idempotencyKey ? undefined : held,
          result: undefined,
        }));
    }
  }

  private async execute(command: ActionCommand): Promise<ExecutionOutcome> {
    const executor = this.deps.executors[command.kind];
    if (!executor) return { outcome: 'audited', detail: `no executor for ${command.kind} is installed yet: recorded in audit mode, no write API called` };
    const { pacer, policy } = this.deps;
    const mode = modeNow(command, policy, this.deps.modeOverride);
    const run = mode.audit && command.mode === 'enforce' ? { ...command, mode: 'audit' as const } : command;
    try {
      const context = await this.deps.executionContext();
      const cost = executor.apiCost?.(run);
      const execute = () => executeOnVerifiedTarget(executor, run, context, policy.protection);
      const outcome = !pacer || !cost ? await execute() : await pacer.within(await pacer.reserve(cost), execute); // a spent budget throws EnginePaced
      return run === command || outcome.outcome !== 'audited' ? outcome : { ...outcome, detail: `${outcome.detail} (${mode.why})` };
    } catch (error) {
      // Executors classify API failures themselves; what reaches here is a client that could not be built, or the
      // pacer's EnginePaced (a spent budget: record() defers the action, spending no attempt).
      return error instanceof ConfigError ? { outcome: 'failed', class: 'permanent', detail: error.message } : { outcome: 'failed', ...classifyFailure(error) };
    }
  }

  /**
   * Put the action back on the queue for later without spending an attempt: its API budget is spent (the pacer said
   * when it frees up) or its device is busy. Spread over up to 30 s more, so a deferred burst does not return at once.
   */
  private async defer(entry: LedgerEntry, command: ActionCommand, at: string, waitMs: number, why: string, log: Logger): Promise<WorkerOutcome> {
    const spread = Math.min(waitMs, 30_000) * (this.deps.random ?? Math.random)();
    const when = new Date(this.deps.now().getTime() + waitMs + spread);
    const detail = `${why}; deferred to ${when.toISOString()}`;
    await this.deps.ledger.transition(entry.key, entry.etag, 'queued', { by: 'worker', at, note: detail });
    await this.scheduleDeferred(command, when);
    log.info({ outcome: 'deferred', until: when.toISOString() }, detail);
    return { key: entry.key, outcome: 'deferred', detail };
  }

  /**
   * Turn an execution outcome into the ledger's next state, and schedule what comes next. The ledger moves first:
   * if the process dies before the copy is scheduled, the entry waits `queued` and a redelivery of this message
   * claims it again (executors read state first, so nothing is repeated); a copy scheduled first could instead
   * arrive while the entry still looked `running` and be dropped as a duplicate.
   */
  private async record(entry: LedgerEntry, command: ActionCommand, outcome: ExecutionOutcome, at: string, log: Logger): Promise<WorkerOutcome> {
    const { ledger, queue, now } = this.deps;
    const attempt: LedgerAttempt = {
      attempt: command.attempt,
      at,
      outcome: outcome.outcome === 'failed' ? outcome.class : outcome.outcome,
      detail: outcome.detail,
      ...(outcome.outcome === 'failed' && outcome.status !== undefined && { status: outcome.status }),
      ...(outcome.outcome === 'failed' && outcome.code !== undefined && { code: outcome.code }),
    };
    const attempts = [...entry.attempts, attempt];
    const event = { by: 'worker', at, note: outcome.detail };
    const result = async (state: WorkerOutcome['outcome']): Promise<WorkerOutcome> => {
      log.info({ outcome: state, ...(attempt.status !== undefined && { status: attempt.status }) }, outcome.detail);
      if (state === 'succeeded' || state === 'audited' || state === 'failed' || state === 'blocked' || state === 'held')
        await this.report(reportedCommand(command), state, outcome.detail, attemptCount(attempts), log);
      return { key: entry.key, outcome: state, detail: outcome.detail };
    };

    switch (outcome.outcome) {
      case 'held':
        await ledger.transition(entry.key, entry.etag, 'pending-approval', event, { attempts, stateReason: outcome.detail });
        return await result('held');
      case 'succeeded':
      case 'audited':
        await ledger.transition(entry.key, entry.etag, 'succeeded', event, {
          attempts,
          ...(outcome.outcome === 'succeeded' && outcome.rollback !== undefined && { rollback: outcome.rollback }),
        });
        return await result(outcome.outcome);
      case 'pending': {
        const followUpMs = this.deps.followUpMs ?? outcome.followUpAfterMs;
        await ledger.transition(
          entry.key,
          entry.etag,
          'queued',
          { ...event, note: `${outcome.detail}; follow-up in ${Math.round(followUpMs / 1000)} s` },
          { attempts },
        );
        await queue.schedule({ ...command, followUp: (command.followUp ?? 0) + 1 }, new Date(now().getTime() + followUpMs));
        return await result('pending');
      }
      case 'failed': {
        if (outcome.code === ENGINE_PACED) return this.defer(entry, command, at, outcome.retryAfterMs ?? 1000, outcome.detail, log);
        const next = command.attempt + 1;
        if (outcome.class === 'transient' && next < (this.deps.retryPolicy ?? RETRY_POLICY).maxAttempts) {
          const delay = retryDelayMs(command.attempt, outcome.retryAfterMs, this.deps.random, this.deps.retryPolicy);
          await ledger.transition(
            entry.key,
            entry.etag,
            'queued',
            { ...event, note: `${outcome.detail}; attempt ${next + 1} in ${Math.round(delay / 1000)} s` },
            { attempts },
          );
          const { followUp: _followUp, deferral: _deferral, ...retry } = command;
          await queue.schedule({ ...retry, attempt: next }, new Date(now().getTime() + delay));
          return await result('retrying');
        }
        const state = outcome.class === 'blocked' ? 'blocked' : 'failed';
        const why = outcome.class === 'transient' ? `gave up after ${next} attempts: ${outcome.detail}` : outcome.detail;
        await ledger.transition(entry.key, entry.etag, state, { ...event, note: why }, { attempts, stateReason: why });
        return await result(state);
      }
    }
  }

  /**
   * Make this delivery the one that runs the action, or say why not. ETag-guarded; a conflict means the entry moved
   * (the submitter marked it queued, another delivery claimed it), so read it again and judge afresh.
   */
  private async claim(first: LedgerEntry, delivery: QueueDelivery, at: string): Promise<{ entry: LedgerEntry; outcome?: WorkerOutcome; heldUntil?: number }> {
    const { ledger } = this.deps;
    let entry = first;
    for (let tries = 0; tries < 5; tries++) {
      const by = { by: 'worker', at, note: `delivery ${delivery.deliveryCount} of ${delivery.messageId}` };
      try {
        switch (entry.state) {
          // The broker can deliver before the submitter has marked the entry queued: a `planned` entry whose
          // message arrived is on the queue by definition, so the worker records that step itself.
          case 'planned':
            entry = await ledger.transition(entry.key, entry.etag, 'queued', { ...by, note: 'delivered before the submitter marked it queued' });
            continue;
          case 'queued':
            return { entry: await ledger.transition(entry.key, entry.etag, 'running', by) };
          case 'running':
            // Another delivery holds it, unless its lease ran out (that worker died mid-way): then take it over.
            if (Date.parse(at) - Date.parse(entry.updatedAt) < this.leaseMs) return { entry, heldUntil: Date.parse(entry.updatedAt) + this.leaseMs + 1000 };
            return { entry: await ledger.transition(entry.key, entry.etag, 'running', { ...by, note: `taken over: lease expired (${by.note})` }) };
          default:
            return { entry, outcome: { key: entry.key, outcome: 'duplicate', detail: `already ${entry.state}` } };
        }
      } catch (error) {
        if (!(error instanceof LedgerConflictError)) throw error;
        entry = (await ledger.get(entry.key)) ?? entry;
      }
    }
    throw new Error(`could not claim ${entry.key}: it kept changing`); // abandon: the broker redelivers
  }

  /** The same attempt again at `when`: a deferral has its own MessageId and spends no attempt. */
  private scheduleDeferred(command: ActionCommand, when: Date): Promise<void> {
    return this.deps.queue.schedule({ ...command, deferral: (command.deferral ?? 0) + 1 }, when);
  }

  /**
   * A message the schema refuses is dead-lettered at once, into the ledger's dead-letter records, and completed: ten
   * quick redeliveries would not make it valid, and the Functions trigger in Node cannot dead-letter on the broker.
   */
  private async parseOrDeadLetter<T>(parse: () => T, what: string, body: unknown, delivery: QueueDelivery, log: Logger): Promise<T | WorkerOutcome> {
    try {
      return parse();
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      log.error({ messageId: delivery.messageId, problem: error.message }, `dead-lettered: not ${what}`);
      const at = this.deps.now().toISOString();
      const why = `refused by the worker: not ${what}: ${error.message}`;
      const key = claimedKey(body);
      await this.deps.ledger.recordDeadLetter({
        messageId: delivery.messageId,
        at,
        by: 'worker',
        reason: 'SchemaInvalid',
        description: `not ${what}: ${error.message}`,
        deliveryCount: delivery.deliveryCount,
        body: bodyText(body),
        ...(key && { actionKey: key }),
      });
      // The message names an action the ledger holds: end it there too, so it does not wait `queued` forever.
      const ended = key ? await this.markDeadLettered(key, why, at) : undefined;
      if (ended) await this.report(ended, 'failed', why, attemptCount(ended.attempts), log);
      return { key, outcome: 'poison', detail: error.message };
    }
  }

  /**
   * The dead-letter reconciler's step (a timer in Azure): every message Service Bus dead-lettered becomes a ledger
   * record, its action (if it is one) is marked `dead-lettered` and reported on its incident, and only then is the
   * message removed from the dead-letter queue. Running twice, or on two instances, records each message once.
   */
  async reconcileDeadLetters(max = 100, log: Logger = this.deps.log): Promise<{ received: number; recorded: number; actions: number }> {
    const { ledger, queue, now } = this.deps;
    let recorded = 0;
    let actions = 0;
    const letters = await queue.receiveDeadLetters(max);
    let failures = 0;
    for (const letter of letters) {
      // One letter that cannot be recorded (storage down) stays on the dead-letter queue for the next run, and says
      // so; it does not stop the others from being recorded.
      try {
        const at = now().toISOString();
        const why = `dead-lettered by Service Bus: ${letter.reason}${letter.description ? ` (${letter.description})` : ''}`;
        let command: ActionCommand | undefined;
        try {
          command = parseActionCommand(letter.body);
        } catch {
          command = undefined; // not an action (a re-evaluation, or garbage): the record alone keeps it
        }
        const ended = command && (await this.markDeadLettered(command.idempotencyKey, why, at, command));
        if (command && ended) {
          actions++;
          await this.report(reportedCommand(command), 'failed', why, command.attempt + 1, log);
        }
        const created = await ledger.recordDeadLetter({
          messageId: letter.messageId,
          at,
          by: 'broker',
          reason: letter.reason,
          description: letter.description,
          ...(letter.deliveryCount !== undefined && { deliveryCount: letter.deliveryCount }),
          body: bodyText(letter.body),
          ...(command && { actionKey: command.idempotencyKey }),
          ...(command?.source.incidentArmId && { incidentArmId: command.source.incidentArmId }),
        });
        if (created) recorded++;
        log.warn({ messageId: letter.messageId, reason: letter.reason, actionId: command?.id }, why);
        await letter.settle();
      } catch (error) {
        failures++;
        log.error({ err: error, messageId: letter.messageId }, 'could not record a dead-lettered message: it stays on the dead-letter queue for the next run');
      }
    }
    if (failures > 0) throw new Error(`${failures} of ${letters.length} dead-lettered message(s) could not be recorded; they stay on the dead-letter queue`);
    return { received: letters.length, recorded, actions };
  }

  /**
   * Move the action to `dead-lettered` unless it already reached a final state, and return it then. An entry that does
   * not exist yet is created from the command, when there is one (a message can outrun its submitter).
   */
  private async markDeadLettered(key: string, why: string, at: string, command?: ActionCommand): Promise<LedgerEntry | undefined> {
    const { ledger } = this.deps;
    const event = { by: 'reconciler', at, note: why };
    for (let tries = 0; tries < 5; tries++) {
      const entry = (await ledger.get(key)) ?? (command && (await ledger.create(entryFromCommand(command, at, 'reconciler'))).entry);
      if (!entry) return undefined;
      try {
        if (entry.state === 'planned') {
          await ledger.transition(entry.key, entry.etag, 'queued', event); // then round again, to dead-lettered
        } else if (entry.state === 'queued' || entry.state === 'running') {
          return await ledger.transition(entry.key, entry.etag, 'dead-lettered', event, { stateReason: why });
        } else {
          return undefined;
        }
      } catch (error) {
        if (!(error instanceof LedgerConflictError)) throw error;
      }
    }
    throw new Error(`could not mark ${key} dead-lettered: it kept changing`);
  }

  private report(action: ReportedAction, state: ReportedState, detail: string, attempts: number, log: Logger): Promise<void> {
    return reportOutcome(async () => (await this.deps.executionContext()).incidents, action, state, detail, attempts, log);
  }
}

/** The action key a message names, if it names one in the form keys take, however malformed the rest of it is. */
function claimedKey(body: unknown): string | undefined {
  const key = isRecord(body) ? body.idempotencyKey : undefined;
  return typeof key === 'string' && IDEMPOTENCY_KEY_PATTERN.test(key) ? key : undefined;
}

/** Who holds a device, until when (epoch ms): a lease, so a worker that dies mid-way frees the device in 5 minutes. */
interface DeviceLease {
  holder: string;
  until: number;
}

/** A device's lease key: its strongest identifier, lower-cased. */
function deviceLeaseKey(target: DeviceTarget): string {
  return `device:${(target.id ?? target.aadDeviceId ?? target.fqdn ?? target.hostName ?? '').toLowerCase()}`;
}

/** What a dead-letter record keeps of a body: JSON text (the ledger cuts it to fit). */
function bodyText(body: unknown): string {
  try {
    return typeof body === 'string' ? body : (JSON.stringify(body) ?? String(body));
  } catch {
    return String(body);
  }
}

/**
 * The mode an execution runs in now. Audit wins, whoever says it: the command (as decided), RESPONDER_MODE, or the policy
 * in force now, globally or for the command's rule (disabled or removed since counts as audit). So a retry, a deferral
 * or a replay of an action decided in enforce mode rehearses once the engine is switched to audit.
 */
function modeNow(command: ActionCommand, policy: CompiledPolicy, override: Mode): { audit: boolean; why: string } {
  if (command.mode === 'audit') return { audit: true, why: 'decided in audit mode' };
  if (override === 'audit') return { audit: true, why: 'RESPONDER_MODE=audit' };
  if (policy.policy.mode === 'audit') return { audit: true, why: 'the policy in force is in audit mode' };
  const ruleId = command.source.ruleId;
  if (ruleId === undefined) return { audit: false, why: '' };
  const rule = policy.policy.rules.find((r) => r.id === ruleId);
  if (!rule) return { audit: true, why: `rule ${ruleId} is no longer in the policy` };
  if (!rule.enabled) return { audit: true, why: `rule ${ruleId} is disabled now` };
  if (rule.mode === 'audit') return { audit: true, why: `rule ${ruleId} is in audit mode now` };
  return { audit: false, why: '' };
}

function entryFromCommand(command: ActionCommand, at: string, by = 'worker') {
  return {
    key: command.idempotencyKey,
    kind: command.kind,
    target: command.target,
    params: command.params,
    mode: command.mode,
    reason: command.reason,
    source: command.source,
    state: 'queued' as const,
    createdAt: at,
    by,
  };
}
