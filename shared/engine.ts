import type { ActionKind } from './actions/catalogue';
import type { ActionExecutor, ExecutionContext, ExecutionOutcome } from './actions/executor';
import { classifyFailure } from './actions/failure';
import { RETRY_POLICY, retryDelayMs } from './actions/retryPolicy';
import { OUTCOME_LABELS, outcomeComment, type ReportedState } from './actions/report';
import { commentIdFor } from './clients/sentinel';
import { parseIncidentArmId, type IncidentArmIdParts } from './signals/identifiers';
import { normalizeSentinelPayload } from './signals/sentinel';
import { isReevaluation, parseReevaluation, REEVALUATE_AFTER_MS } from './queue/reevaluation';
import { parseActionCommand, type ActionCommand } from './actions/command';
import { targetLabel, type ActionTarget } from './actions/target';
import { ConfigError, InputError } from './errors';
import { LedgerConflictError, LedgerTransitionError, type ActionLedger, type LedgerAttempt, type LedgerEntry, type LedgerState } from './ledger/ledger';
import type { Logger } from './log';
import { capKey, decide, summarize, type CompiledPolicy } from './policy/decide';
import type { Decision, PlannedAction, SkippedAction } from './policy/decision';
import { checkAccount, checkHost } from './policy/protection';
import type { Mode } from './policy/schema';
import type { ActionQueue, QueueDelivery } from './queue/queue';
import type { IncidentRef, Signal } from './signals/signal';

export interface EngineDeps {
  policy: CompiledPolicy;
  ledger: ActionLedger;
  queue: ActionQueue;
  modeOverride: Mode;
  now: () => Date;
  log: Logger;
  executors: Partial<Record<ActionKind, ActionExecutor>>;
  /** The API clients executors use, created on first need (cold start matters). */
  executionContext: () => Promise<ExecutionContext>;
  /** For retry jitter; injected so tests are deterministic. */
  random?: () => number;
  /** Fills in user risk, privilege, groups and device data before deciding; absent when enrichment is off. */
  enrich?: (signal: Signal, policy: CompiledPolicy) => Promise<Signal>;
}

/** What one submission did to the ledger, per action. */
export interface RecordedAction {
  key: string;
  kind: ActionKind;
  target: string;
  state: LedgerState;
  /** False when an earlier delivery of the same subject had already recorded it. */
  new: boolean;
}

export interface Submission {
  decision: Decision;
  recorded: RecordedAction[];
}

export interface WorkerOutcome {
  key?: string;
  outcome: 'succeeded' | 'audited' | 'pending' | 'retrying' | 'failed' | 'blocked' | 'duplicate' | 'poison';
  detail: string;
}

/** How long a claimed (`running`) action belongs to its delivery: Service Bus's longest automatic lock renewal. */
export const RUNNING_LEASE_MS = 5 * 60_000;

/** The queue could not take the commands: the caller should retry (HTTP 503), nothing was lost. */
export class QueueUnavailableError extends Error {
  override readonly name = 'QueueUnavailableError';
}

/**
 * The engine: Signal -> Decision -> ledger -> ActionCommands on the queue -> worker. It owns the order of I/O around
 * the pure policy module; it never talks HTTP or Azure Functions (the adapters in functions/ do).
 */
export class ResponderEngine {
  constructor(private readonly deps: EngineDeps) {}

  get policy(): CompiledPolicy {
    return this.deps.policy;
  }

  /** The decision, with the ledger's view (caps spent, actions already recorded), and no side effect. */
  async plan(given: Signal, policy: CompiledPolicy = this.deps.policy): Promise<Decision> {
    const listed = await this.withListedEntities(given, this.deps.log);
    const signal = this.deps.enrich ? await this.deps.enrich(listed, policy) : listed;
    const decision = decide(signal, policy, { modeOverride: this.deps.modeOverride, capUsage: await this.capUsage(policy) });
    const existing = await this.existingEntries(decision);
    return withLedgerView(decision, existing);
  }

  /**
   * Decide, record, enqueue. Each planned action is first created in the ledger (insert-if-absent: concurrent
   * deliveries of one incident create it once), then sent, then marked queued. An entry left `planned` by a failed
   * send or a crash is sent again by the next delivery: the relay retries on 503, and the MessageId is the
   * idempotency key, so Service Bus drops a copy that did get through.
   */
  async submit(given: Signal, by: string, parentLog: Logger = this.deps.log, reevaluations = 0): Promise<Submission> {
    const { ledger, queue, now } = this.deps;
    const log = parentLog.child({
      incidentId: given.incident?.armId ?? given.subject,
      ...(given.incident?.number !== undefined && { incidentNumber: given.incident.number }),
    });
    const listed = await this.withListedEntities(given, log);
    if (listed.incident && listed.entities.length === 0) await this.scheduleReevaluation(listed, reevaluations, log);
    const signal = this.deps.enrich ? await this.deps.enrich(listed, this.deps.policy) : listed;
    const decision = decide(signal, this.deps.policy, { modeOverride: this.deps.modeOverride, capUsage: await this.capUsage(this.deps.policy) });
    const at = now().toISOString();
    const recorded: RecordedAction[] = [];
    const toSend: Array<{ command: ActionCommand; entry: LedgerEntry }> = [];
    const existing = new Map<string, LedgerEntry>();

    for (const action of decision.actions) {
      const { created, entry } = await ledger.create(newEntry(action, signal, 'planned', undefined, at, by));
      if (created || entry.state === 'planned') toSend.push({ command: commandFor(entry, at), entry });
      else existing.set(entry.key, entry);
      if (!created && entry.state !== 'planned') recorded.push(recordOf(entry, false));
    }
    for (const skip of decision.skipped) {
      const state = skipState(skip);
      if (!state || !skip.idempotencyKey || !skip.target) continue;
      const recordable = { ...skip, idempotencyKey: skip.idempotencyKey, target: skip.target };
      const { created, entry } = await ledger.create(newEntry(recordable, signal, state, `${skip.reason}: ${skip.detail}`, at, by));
      recorded.push(recordOf(entry, created));
    }

    if (toSend.length > 0) {
      try {
        await queue.send(toSend.map((s) => s.command));
      } catch (error) {
        log.error({ err: error, actions: toSend.length }, 'enqueue failed: answering 503 so the caller retries');
        throw new QueueUnavailableError(`the action queue did not accept ${toSend.length} action(s): retry the request`);
      }
      for (const { entry } of toSend) {
        const queued = await this.markQueued(entry, at);
        recorded.push(recordOf(queued, true));
      }
    }
    const result = withLedgerView(decision, existing);
    log.info({ score: decision.score.total, sent: toSend.length, recorded: recorded.length, policy: decision.policy.digest, by }, result.summary);
    return { decision: result, recorded };
  }

  /** The worker's entry: an incident to look at again, or an action to take. */
  async handleMessage(body: unknown, delivery: QueueDelivery, log: Logger = this.deps.log): Promise<WorkerOutcome> {
    if (!isReevaluation(body)) return this.runCommand(body, delivery, log);
    const message = parseOrPoison(() => parseReevaluation(body), 'a re-evaluation', delivery, log);
    if ('outcome' in message) return message;
    const parts = parseIncidentArmId(message.incidentArmId) as IncidentArmIdParts;
    const { incidents } = await this.deps.executionContext();
    // A failure here throws: the broker redelivers the message, and the re-evaluation is not lost.
    const signal = normalizeSentinelPayload(await incidents.incidentWithEntities(parts));
    const { decision } = await this.submit(signal, 'engine (re-evaluation)', log, message.attempt);
    return { outcome: 'succeeded', detail: `re-evaluated ${message.incidentArmId}: ${decision.summary}` };
  }

  /**
   * The worker's step for one delivered message: validate, claim, re-check protection against the current policy,
   * execute (the executor reads state first and writes nothing in audit mode), record, schedule what comes next.
   */
  async runCommand(body: unknown, delivery: QueueDelivery, log: Logger = this.deps.log): Promise<WorkerOutcome> {
    const { ledger, now } = this.deps;
    const command = parseOrPoison(() => parseActionCommand(body), 'an ActionCommand', delivery, log);
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
    if (claim.outcome) return claim.outcome;
    entry = claim.entry;

    const verdict = protectionOf(command.target, this.deps.policy);
    if (verdict) {
      await ledger.transition(
        entry.key,
        entry.etag,
        'blocked',
        { by: 'worker', at, note: verdict },
        { stateReason: verdict, attempts: [...entry.attempts, { attempt: command.attempt, at, outcome: 'blocked', detail: verdict }] },
      );
      actionLog.warn({ reason: verdict }, 'refused at execution: target is protected');
      return { key: entry.key, outcome: 'blocked', detail: verdict };
    }

    const executor = this.deps.executors[command.kind];
    let outcome: ExecutionOutcome;
    if (!executor) {
      outcome = { outcome: 'audited', detail: `no executor for ${command.kind} is installed yet: recorded in audit mode, no write API called` };
    } else {
      try {
        outcome = await executor.execute(command, await this.deps.executionContext());
      } catch (error) {
        // Executors classify API failures themselves; what reaches here is a client that could not be built.
        outcome =
          error instanceof ConfigError ? { outcome: 'failed', class: 'permanent', detail: error.message } : { outcome: 'failed', ...classifyFailure(error) };
      }
    }
    return this.record(entry, command, outcome, at, actionLog);
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
      if (state === 'succeeded' || state === 'audited' || state === 'failed' || state === 'blocked')
        await this.report(command, state, outcome.detail, attempts.length, log);
      return { key: entry.key, outcome: state, detail: outcome.detail };
    };

    switch (outcome.outcome) {
      case 'succeeded':
      case 'audited':
        await ledger.transition(entry.key, entry.etag, 'succeeded', event, {
          attempts,
          ...(outcome.outcome === 'succeeded' && outcome.rollback !== undefined && { rollback: outcome.rollback }),
        });
        return await result(outcome.outcome);
      case 'pending': {
        await ledger.transition(
          entry.key,
          entry.etag,
          'queued',
          { ...event, note: `${outcome.detail}; follow-up in ${Math.round(outcome.followUpAfterMs / 1000)} s` },
          { attempts },
        );
        await queue.schedule({ ...command, followUp: (command.followUp ?? 0) + 1 }, new Date(now().getTime() + outcome.followUpAfterMs));
        return await result('pending');
      }
      case 'failed': {
        const next = command.attempt + 1;
        if (outcome.class === 'transient' && next < RETRY_POLICY.maxAttempts) {
          const delay = retryDelayMs(command.attempt, outcome.retryAfterMs, this.deps.random);
          await ledger.transition(
            entry.key,
            entry.etag,
            'queued',
            { ...event, note: `${outcome.detail}; attempt ${next + 1} in ${Math.round(delay / 1000)} s` },
            { attempts },
          );
          const { followUp: _drop, ...retry } = command;
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
  private async claim(first: LedgerEntry, delivery: QueueDelivery, at: string): Promise<{ entry: LedgerEntry; outcome?: WorkerOutcome }> {
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
            if (Date.parse(at) - Date.parse(entry.updatedAt) < RUNNING_LEASE_MS)
              return { entry, outcome: { key: entry.key, outcome: 'duplicate', detail: 'running in another delivery' } };
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

  /**
   * Trigger payloads may carry no entities (Sentinel fills them in later, or the relay omits them): list them through
   * ARM before deciding. If that fails, decide on what arrived and say so.
   */
  private async withListedEntities(signal: Signal, log: Logger): Promise<Signal> {
    if (!signal.incident || signal.entities.length > 0) return signal;
    const parts = parseIncidentArmId(signal.incident.armId) as IncidentArmIdParts;
    try {
      const { incidents } = await this.deps.executionContext();
      const listed = normalizeSentinelPayload(await incidents.incidentWithEntities(parts));
      const note = `the payload carried no entities: ${listed.entities.length} listed through ARM`;
      return {
        ...signal,
        entities: listed.entities,
        notes: [...signal.notes.filter((n) => !/no relatedEntities/.test(n)), note, ...listed.notes.filter((n) => !/no relatedEntities/.test(n))],
      };
    } catch (error) {
      log.warn({ err: error }, 'could not list the incident entities through ARM');
      return {
        ...signal,
        notes: [...signal.notes, `listing the incident's entities through ARM failed (${classifyFailure(error).detail}): deciding on the payload alone`],
      };
    }
  }

  /** No entities yet: look again in a few minutes rather than decide on nothing, a bounded number of times. */
  private async scheduleReevaluation(signal: Signal, done: number, log: Logger): Promise<void> {
    const delay = REEVALUATE_AFTER_MS[done];
    const armId = (signal.incident as IncidentRef).armId;
    if (delay === undefined) {
      signal.notes.push(`still no entities after ${done} re-evaluations: giving up; the incident's next update will be evaluated`);
      return;
    }
    const at = new Date(this.deps.now().getTime() + delay);
    await this.deps.queue.schedule({ type: 'reevaluateIncident', incidentArmId: armId, attempt: done + 1, createdAt: this.deps.now().toISOString() }, at);
    signal.notes.push(`no entities yet: the incident will be evaluated again at ${at.toISOString()}`);
    log.info({ at: at.toISOString(), attempt: done + 1 }, 'no entities yet: re-evaluation scheduled');
  }

  /**
   * Tell the incident: one comment per action, its id derived from the idempotency key (a retry rewrites it, never
   * adds a second), and a label per outcome. Best effort: the outcome is already in the ledger, so a Sentinel
   * failure is logged, not retried at the action's expense.
   */
  private async report(command: ActionCommand, state: ReportedState, detail: string, attempts: number, log: Logger): Promise<void> {
    const incident = command.source.incidentArmId ? parseIncidentArmId(command.source.incidentArmId) : undefined;
    if (!incident) return;
    try {
      const { incidents } = await this.deps.executionContext();
      await incidents.comment(incident, commentIdFor(command.idempotencyKey), outcomeComment(command, state, detail, attempts));
      await incidents.label(incident, OUTCOME_LABELS[state]);
    } catch (error) {
      log.warn({ err: error, incidentId: command.source.incidentArmId }, 'could not comment on the incident; the outcome is in the ledger');
    }
  }

  private async markQueued(entry: LedgerEntry, at: string): Promise<LedgerEntry> {
    try {
      return await this.deps.ledger.transition(entry.key, entry.etag, 'queued', { by: 'engine', at });
    } catch (error) {
      // A concurrent delivery of the incident, or the worker itself, moved it on: it is on its way either way.
      if (error instanceof LedgerConflictError || error instanceof LedgerTransitionError) return (await this.deps.ledger.get(entry.key)) ?? entry;
      throw error;
    }
  }

  private async capUsage(policy: CompiledPolicy): Promise<Map<string, number>> {
    const usage = new Map<string, number>();
    const now = this.deps.now().getTime();
    for (const cap of policy.policy.guardrails.caps) {
      usage.set(capKey(cap), await this.deps.ledger.countSince(cap.action, new Date(now - cap.per.ms).toISOString()));
    }
    return usage;
  }

  private async existingEntries(decision: Decision): Promise<Map<string, LedgerEntry>> {
    const existing = new Map<string, LedgerEntry>();
    for (const action of decision.actions) {
      const entry = await this.deps.ledger.get(action.idempotencyKey);
      if (entry && entry.state !== 'planned') existing.set(entry.key, entry);
    }
    return existing;
  }
}

/**
 * A message the schema refuses is poison: logged and completed, never retried (ten quick redeliveries would not make
 * it valid). Dead-lettering it with a reason comes with the Service Bus adapter.
 */
function parseOrPoison<T>(parse: () => T, what: string, delivery: QueueDelivery, log: Logger): T | WorkerOutcome {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    log.error({ messageId: delivery.messageId, problem: error.message }, `poison message: not ${what}`);
    return { outcome: 'poison', detail: error.message };
  }
}

/** Held actions wait for a human; refusals and open circuits are recorded so that they can be seen and counted. */
function skipState(skip: SkippedAction): LedgerState | undefined {
  switch (skip.reason) {
    case 'needs-approval':
      return 'pending-approval';
    case 'protected':
    case 'circuit-open':
      return 'blocked';
    default:
      return undefined;
  }
}

/** Move actions an earlier delivery already recorded from `actions` to `skipped: already-done`. */
function withLedgerView(decision: Decision, existing: Map<string, LedgerEntry>): Decision {
  if (existing.size === 0) return decision;
  const actions: PlannedAction[] = [];
  const skipped: SkippedAction[] = [...decision.skipped];
  for (const action of decision.actions) {
    const entry = existing.get(action.idempotencyKey);
    if (!entry) actions.push(action);
    else
      skipped.push({
        kind: action.kind,
        target: action.target,
        idempotencyKey: action.idempotencyKey,
        params: action.params,
        ruleId: action.ruleId,
        mode: action.mode,
        reason: 'already-done',
        detail: `recorded ${entry.state} at ${entry.updatedAt}`,
      });
  }
  const result = { ...decision, actions, skipped };
  result.summary = summarize(result);
  return result;
}

type Recordable = {
  idempotencyKey: string;
  kind: ActionKind;
  target: ActionTarget;
  params?: PlannedAction['params'];
  ruleId: string;
  mode?: Mode;
  reason?: string;
};

function newEntry(action: Recordable, signal: Signal, state: LedgerState, stateReason: string | undefined, at: string, by: string) {
  return {
    key: action.idempotencyKey,
    kind: action.kind,
    target: action.target,
    params: action.params ?? {},
    mode: action.mode ?? 'audit',
    reason: state === 'planned' ? (action.reason ?? '') : (stateReason ?? ''),
    source: {
      type: signal.source,
      subject: signal.subject,
      ruleId: action.ruleId,
      ...(signal.incident && { incidentArmId: signal.incident.armId }),
      ...(signal.source === 'manual' && { requestedBy: by }),
    },
    state,
    ...(stateReason && { stateReason }),
    createdAt: at,
    by,
  };
}

function commandFor(entry: LedgerEntry, at: string): ActionCommand {
  return {
    id: entry.key,
    kind: entry.kind,
    target: entry.target,
    params: entry.params,
    reason: entry.reason,
    mode: entry.mode,
    source: entry.source,
    idempotencyKey: entry.key,
    attempt: 0,
    createdAt: at,
  };
}

function entryFromCommand(command: ActionCommand, at: string) {
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
    by: 'worker',
  };
}

function recordOf(entry: LedgerEntry, isNew: boolean): RecordedAction {
  return { key: entry.key, kind: entry.kind, target: targetLabel(entry.target), state: entry.state, new: isNew };
}

/** Re-check protection at execution time, against the policy in force now (it may have changed since deciding). */
function protectionOf(target: ActionTarget, policy: CompiledPolicy): string | undefined {
  const verdict =
    target.type === 'user'
      ? checkAccount(
          { kind: 'account', ...(target.id && { aadUserId: target.id }), ...(target.upn && { upn: target.upn, accountName: target.upn.split('@')[0] }) },
          policy.protection,
        )
      : checkHost(
          {
            kind: 'host',
            ...(target.id && { mdatpDeviceId: target.id }),
            ...(target.aadDeviceId && { aadDeviceId: target.aadDeviceId }),
            ...(target.fqdn && { fqdn: target.fqdn }),
            ...(target.hostName && { hostName: target.hostName }),
          },
          policy.protection,
        );
  // Unverified data was already judged at decision time (held for a human); here only a positive match blocks.
  return verdict.status === 'protected' ? verdict.why : undefined;
}
