import { Writable } from 'node:stream';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ActionKind } from '../../shared/actions/catalogue';
import type { ActionCommand } from '../../shared/actions/command';
import { executeCommand, type ExecutionDeps } from '../../shared/actions/execute';
import type { ActionExecutor, ExecutionContext, ExecutionOutcome } from '../../shared/actions/executor';
import { EXECUTORS } from '../../shared/actions/executors';
import type { ActionTarget } from '../../shared/actions/target';
import { BatchedDevices } from '../../shared/clients/batchedDevices';
import { createDefenderDevices } from '../../shared/clients/defender';
import { createGraphDirectory } from '../../shared/clients/graph';
import { SentinelReports } from '../../shared/clients/sentinel';
import { Pacer, PACED_APIS, type ApiCosts, type PacedApi, type Reservation } from '../../shared/coordination/pacer';
import { MemorySharedState } from '../../shared/coordination/sharedState';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import { compilePolicy } from '../../shared/policy/decide';
import { parsePolicy } from '../../shared/policy/load';
import { command, succeededEntry } from '../fixtures/commands';
import { defenderApiOf } from '../../sandbox/defender';
import { DEMO, DEMO_DEVICES, SECURITY_ADMINISTRATOR } from '../../sandbox/tenant';
import { useSandboxContext } from '../support/sandboxContext';

/**
 * Every executor declares the paced calls it makes (`apiCost`, and `reserve` once it knows more); the worker reserves
 * them before the first call. Defender reads are the exception: made through BatchedDevices, as composition wires it,
 * they are paced on the shared budget and never drawn from a reservation. Each executor runs here through every path
 * it has, against the sandbox, with clients paced by a real Pacer: a paced call beyond the declaration is logged as an
 * overdraw, and fails the test.
 */
const env = useSandboxContext();

const ENFORCE = compilePolicy(parsePolicy('version: 1\nmode: enforce\nrules: []\n', 'test policy'));
const ROOMY = Object.fromEntries(PACED_APIS.map((api) => [api, [{ max: 10_000, windowMs: 60_000 }]])) as Record<PacedApi, { max: number; windowMs: number }[]>;

const adele: ActionTarget = { type: 'user', id: DEMO.adele, upn: 'adele.vance@contoso.com' };
const jsmith: ActionTarget = { type: 'user', upn: 'jsmith@contoso.com' };
const megan: ActionTarget = { type: 'user', id: DEMO.megan };
const wks: ActionTarget = { type: 'device', id: DEMO_DEVICES.wks042 };

/**
 * What an execution did: its outcome, the overdraws it logged, the paced calls made beyond all it reserved (the
 * target's lookup included), and its Defender calls by the API each was paced to and by the API Defender counted.
 */
interface Metered {
  outcome: ExecutionOutcome;
  overdrawn: Array<{ kind: string; api: string; declared: number; made: number }>;
  unreserved: Array<{ api: PacedApi; reserved: number; made: number }>;
  calls: number;
  defender: { paced: string[]; counted: string[] };
}

/** Defender reads: BatchedDevices paces them on the shared budget, never on an execution's reservation. */
const SHARED_READS = new Set<PacedApi>(['defender-machines', 'defender-machine', 'defender-machine-actions']);

/** The metered execution's paced calls, in order, and what it reserved. */
const paced: PacedApi[] = [];
const reserved: ApiCosts[] = [];

/** A real Pacer that also keeps what each execution reserves. */
class RecordingPacer extends Pacer {
  override reserve(costs: ApiCosts, into?: Reservation): Promise<Reservation> {
    reserved.push(costs);
    return super.reserve(costs, into);
  }
}

/** The clients an execution uses, paced by `pacer`, as composition wires them (or a raw Defender client, `unbatched`). */
async function pacedWorld(pacer: Pacer, { unbatched = false } = {}): Promise<World> {
  const pace = (api: PacedApi) => (paced.push(api), pacer.take(api));
  const settings = {
    authorityHost: 'https://login.microsoftonline.com',
    cloud: 'AzurePublicCloud' as const,
    endpoints: { graph: env.sandbox.origin, defender: env.sandbox.origin, arm: env.sandbox.origin },
  };
  const defender = await createDefenderDevices(settings, pace);
  const context: ExecutionContext = {
    directory: await createGraphDirectory(settings, pace),
    devices: unbatched ? defender : new BatchedDevices(defender),
    incidents: new SentinelReports(settings),
  };
  return { pacer, context };
}

interface World {
  pacer: Pacer;
  context: ExecutionContext;
}

let roomy: World;
beforeAll(async () => {
  roomy = await pacedWorld(new RecordingPacer(new MemorySharedState(), ROOMY));
});

async function meter(
  executor: ActionExecutor | undefined,
  cmd: ActionCommand,
  undone?: LedgerEntry,
  { pacer, context }: World = roomy,
  policy = ENFORCE,
): Promise<Metered> {
  const lines: string[] = [];
  const log = pino({ level: 'error' }, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
  const before = env.sandbox.tenant.calls.length;
  paced.length = 0;
  reserved.length = 0;
  const deps: ExecutionDeps = {
    executors: { [cmd.kind]: executor ?? EXECUTORS[cmd.kind] },
    executionContext: async () => context,
    policy,
    modeOverride: 'enforce',
    pacer,
    entryOf: async (key) => (key === undone?.key ? undone : undefined),
    heldByAnother: async () => undefined,
  };
  const outcome = await executeCommand(deps, cmd, log);
  const calls = env.sandbox.tenant.calls.slice(before);
  const overdrawn = lines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.overdrawn === true) as unknown as Metered['overdrawn'];
  const unreserved = [...new Set(paced.filter((api) => !SHARED_READS.has(api)))]
    .map((api) => ({ api, reserved: reserved.reduce((n, costs) => n + (costs[api] ?? 0), 0), made: paced.filter((p) => p === api).length }))
    .filter(({ reserved, made }) => made > reserved);
  return {
    outcome,
    overdrawn,
    unreserved,
    calls: calls.length,
    defender: {
      paced: paced.filter((api) => api.startsWith('defender-')),
      counted: calls.flatMap((call) => defenderApiOf(call.method, call.path) ?? []),
    },
  };
}

const run = (kind: ActionKind, target: ActionTarget, overrides: Partial<ActionCommand> = {}) => meter(undefined, command(kind, target, overrides));

/** The rollback of what `kind` on `target` did (`outcome`, succeeded), metered: the ledger holds that action, as done. */
const undo = (kind: ActionKind, undone: ActionKind, target: ActionTarget, outcome: ExecutionOutcome, overrides: Partial<ActionCommand> = {}) => {
  const entry = succeededEntry(command(undone, target), (outcome as { rollback?: unknown }).rollback);
  const source = { type: 'manual' as const, subject: 'request', rollbackOf: entry.key };
  return meter(undefined, command(kind, target, { source, ...overrides }, 2), entry);
};

describe('an executor cannot make a paced call it did not reserve', () => {
  type Step = [ActionKind, ActionTarget, Partial<ActionCommand>, ExecutionOutcome['outcome']];
  // Each path of each executor, as a sequence on one freshly seeded tenant (a follow-up needs the post before it).
  const paths: Array<{ what: string; steps: Step[] }> = [
    {
      what: 'disableUser: enforced, already done, audit',
      steps: [
        ['disableUser', adele, {}, 'succeeded'],
        ['disableUser', adele, {}, 'succeeded'],
        ['disableUser', jsmith, { mode: 'audit' }, 'audited'],
      ],
    },
    {
      what: 'revokeSessions: enforced, audit',
      steps: [
        ['revokeSessions', adele, {}, 'succeeded'],
        ['revokeSessions', adele, { mode: 'audit' }, 'audited'],
      ],
    },
    {
      what: 'confirmCompromised: audit, enforced, already confirmed',
      steps: [
        ['confirmCompromised', adele, { mode: 'audit' }, 'audited'],
        ['confirmCompromised', adele, {}, 'succeeded'],
        ['confirmCompromised', adele, {}, 'succeeded'],
      ],
    },
    {
      what: 'isolateDevice: audit, posted, followed up, already isolated',
      steps: [
        ['isolateDevice', wks, { mode: 'audit' }, 'audited'],
        ['isolateDevice', wks, {}, 'pending'],
        ['isolateDevice', wks, { followUp: 1 }, 'succeeded'],
        ['isolateDevice', wks, { attempt: 1 }, 'succeeded'],
      ],
    },
    {
      what: 'isolateDevice on a device found by its Entra device id, then by its name',
      steps: [
        ['isolateDevice', { type: 'device', aadDeviceId: '80e2f5c1-3b7a-4c55-9d0e-1f2a3b4c5d6e' }, {}, 'pending'],
        ['isolateDevice', { type: 'device', fqdn: 'websrv1.contoso.com' }, { mode: 'audit' }, 'audited'],
      ],
    },
    {
      what: 'requirePimReapproval: audit, an activation ended, nothing left',
      steps: [
        ['requirePimReapproval', megan, { mode: 'audit' }, 'audited'],
        ['requirePimReapproval', megan, {}, 'succeeded'],
        ['requirePimReapproval', megan, {}, 'succeeded'],
      ],
    },
  ];

  it.each(paths)('$what', async ({ steps }) => {
    env.sandbox.tenant.actionCompletionMs = 0;
    for (const [kind, target, overrides, reaches] of steps) {
      const { outcome, overdrawn, unreserved, calls, defender } = await run(kind, target, overrides);
      expect(outcome.outcome).toBe(reaches);
      expect(calls).toBeGreaterThan(0);
      expect(overdrawn).toEqual([]);
      expect(unreserved).toEqual([]);
      // Each Defender call is paced to the budget of the API Defender counts it against.
      expect(defender.paced).toEqual(defender.counted);
    }
  });

  it('enableUser, the rollback of disableUser, within what it declared', async () => {
    const disabled = await run('disableUser', adele);
    const enabled = await undo('enableUser', 'disableUser', adele, disabled.outcome);
    expect(enabled.outcome).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
    expect(enabled.overdrawn).toEqual([]);
  });

  it('counts writes it learns of by reading: a permanent role made eligible, then removed, then given back', async () => {
    env.sandbox.tenant.assignRole(DEMO.jsmith, SECURITY_ADMINISTRATOR, 'Assigned');
    const removed = await run('requirePimReapproval', jsmith);
    expect(removed.outcome).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
    expect(removed.overdrawn).toEqual([]);
    const restored = await undo('restorePimAssignments', 'requirePimReapproval', jsmith, removed.outcome);
    expect(restored.outcome).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
    expect(restored.overdrawn).toEqual([]);
  });

  it('releases a device it isolated, on the snapshot, within what it declared', async () => {
    env.sandbox.tenant.actionCompletionMs = 0;
    await run('isolateDevice', wks);
    const isolated = await run('isolateDevice', wks, { followUp: 1 });
    const released = await undo('unisolateDevice', 'isolateDevice', wks, isolated.outcome);
    expect(released.outcome.outcome).toBe('pending');
    expect(released).toMatchObject({ overdrawn: [], unreserved: [] });
    expect(released.defender.paced.filter((api) => api === 'defender-unisolate')).toHaveLength(1);
    expect(released.defender.counted).toEqual(released.defender.paced);
    const followed = await undo('unisolateDevice', 'isolateDevice', wks, isolated.outcome, { followUp: 1 });
    expect(followed).toMatchObject({ overdrawn: [], unreserved: [] });
    expect(followed.defender.paced).not.toContain('defender-unisolate');
  });

  it("reads the records sharing a device's name when protection needs them, paced to the machines list", async () => {
    const listingDefenderIds = compilePolicy(
      parsePolicy(`version: 1\nmode: enforce\nprotected: { devices: ['${DEMO_DEVICES.dc01}'] }\nrules: []\n`, 'test policy'),
    );
    const { outcome, unreserved, defender } = await meter(undefined, command('isolateDevice', wks, { mode: 'audit' }), undefined, roomy, listingDefenderIds);
    expect(outcome.outcome).toBe('audited');
    expect(defender.counted).toContain('defender-machines');
    expect(defender.counted).toEqual(defender.paced);
    expect(unreserved).toEqual([]);
  });

  it('catches a Defender read made on the reservation, not through the batcher', async () => {
    const unbatched = await pacedWorld(new Pacer(new MemorySharedState(), ROOMY), { unbatched: true });
    const { outcome, overdrawn } = await meter(undefined, command('isolateDevice', { type: 'device', id: DEMO_DEVICES.websrv1 }), undefined, unbatched);
    expect(outcome.outcome).toBe('pending');
    expect(overdrawn).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'isolateDevice', api: 'defender-machine', declared: 0, made: 1 }),
        expect.objectContaining({ kind: 'isolateDevice', api: 'defender-machine-actions', declared: 0, made: 1 }),
      ]),
    );
  });

  it('makes Defender reads wait their turn on the shared budget once the post is reserved, rather than defer it', async () => {
    // The machine-actions API has one call per 10 s and another instance just made it: the execution's read waits for
    // the window to free up (on a clock the waits move), then the post is made.
    const clock = { now: Date.now() };
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...ROOMY, 'defender-machine-actions': [{ max: 1, windowMs: 10_000 }] },
      { now: () => clock.now, sleep: async (ms) => void (clock.now += ms), maxInlineWaitMs: 0 },
    );
    await pacer.take('defender-machine-actions');
    const started = clock.now;
    const device: ActionTarget = { type: 'device', id: DEMO_DEVICES.dc01 };
    const { outcome, overdrawn, defender } = await meter(undefined, command('isolateDevice', device), undefined, await pacedWorld(pacer));
    expect(outcome.outcome).toBe('pending');
    expect(overdrawn).toEqual([]);
    expect(clock.now - started).toBeGreaterThanOrEqual(10_000);
    expect(defender.counted).toEqual(['defender-machine', 'defender-machine-actions', 'defender-isolate']);
  });

  it('defers the isolation before its post when a read cannot be paid for within a minute', async () => {
    const budgets = { ...ROOMY, 'defender-machine-actions': [{ max: 1, windowMs: 3_600_000 }], 'defender-isolate': [{ max: 1, windowMs: 3_600_000 }] };
    const tight = await pacedWorld(new Pacer(new MemorySharedState(), budgets, { maxInlineWaitMs: 0 }));
    await tight.pacer.take('defender-machine-actions');
    const device: ActionTarget = { type: 'device', id: DEMO_DEVICES.websrv1 };
    const { outcome, overdrawn, defender } = await meter(undefined, command('isolateDevice', device), undefined, tight);
    expect(outcome).toMatchObject({
      outcome: 'failed',
      class: 'paced',
      detail: expect.stringMatching(/the defender-machine-actions budget \(1 per 3600 s\) is spent/),
    });
    expect(overdrawn).toEqual([]);
    expect(defender.counted).not.toContain('defender-isolate');
    expect(await tight.pacer.reserve({ 'defender-isolate': 1 })).toBeDefined(); // the post's unit went back
  });

  it('catches an executor whose declaration undercounts', async () => {
    const undercounting: ActionExecutor = { ...EXECUTORS.revokeSessions!, apiCost: () => ({}) };
    const { outcome, overdrawn } = await meter(undercounting, command('revokeSessions', adele));
    expect(outcome.outcome).toBe('succeeded'); // the call is still paced and made: containment is not stranded
    expect(overdrawn).toEqual([expect.objectContaining({ kind: 'revokeSessions', api: 'graph-writes', declared: 0, made: 1 })]);
  });

  it('catches a write made before the reserve() that was meant to cover it', async () => {
    const base = EXECUTORS.revokeSessions!;
    const lateReserve: ActionExecutor = {
      ...base,
      apiCost: () => ({}),
      async execute(cmd, context) {
        const outcome = await base.execute(cmd, context); // the write, unreserved
        await context.reserve({ 'graph-writes': 1 }); // declared after the fact
        return outcome;
      },
    };
    const { outcome, overdrawn } = await meter(lateReserve, command('revokeSessions', adele));
    expect(outcome.outcome).toBe('succeeded');
    expect(overdrawn).toEqual([expect.objectContaining({ kind: 'revokeSessions', api: 'graph-writes', declared: 0, made: 1 })]);
  });
});
