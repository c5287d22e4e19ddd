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
import { Pacer, PACED_APIS, type PacedApi } from '../../shared/coordination/pacer';
import { MemorySharedState } from '../../shared/coordination/sharedState';
import { compilePolicy } from '../../shared/policy/decide';
import { parsePolicy } from '../../shared/policy/load';
import { command } from '../fixtures/commands';
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

/** The overdraws an execution logged, and its outcome. */
interface Metered {
  outcome: ExecutionOutcome;
  overdrawn: Array<{ kind: string; api: string; declared: number; made: number }>;
  calls: number;
}

/** The clients an execution uses, paced by `pacer`, as composition wires them (or a raw Defender client, `unbatched`). */
async function pacedWorld(pacer: Pacer, { unbatched = false } = {}): Promise<World> {
  const pace = (api: PacedApi) => pacer.take(api);
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
  roomy = await pacedWorld(new Pacer(new MemorySharedState(), ROOMY));
});

async function meter(executor: ActionExecutor | undefined, cmd: ActionCommand, snapshot?: unknown, { pacer, context }: World = roomy): Promise<Metered> {
  const lines: string[] = [];
  const log = pino({ level: 'error' }, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
  const before = env.sandbox.tenant.calls.length;
  const deps: ExecutionDeps = {
    executors: { [cmd.kind]: executor ?? EXECUTORS[cmd.kind] },
    executionContext: async () => ({ ...context, ...(snapshot !== undefined && { snapshot }) }),
    policy: ENFORCE,
    modeOverride: 'enforce',
    pacer,
    snapshotOf: async () => undefined,
  };
  const outcome = await executeCommand(deps, cmd, log);
  const overdrawn = lines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.overdrawn === true) as unknown as Metered['overdrawn'];
  return { outcome, overdrawn, calls: env.sandbox.tenant.calls.length - before };
}

const run = (kind: ActionKind, target: ActionTarget, overrides: Partial<ActionCommand> = {}, snapshot?: unknown) =>
  meter(undefined, command(kind, target, overrides), snapshot);

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
      const { outcome, overdrawn, calls } = await run(kind, target, overrides);
      expect(outcome.outcome).toBe(reaches);
      expect(calls).toBeGreaterThan(0);
      expect(overdrawn).toEqual([]);
    }
  });

  it('enableUser, the rollback of disableUser, within what it declared', async () => {
    const disabled = await run('disableUser', adele);
    const enabled = await run('enableUser', adele, {}, (disabled.outcome as { rollback: unknown }).rollback);
    expect(enabled.outcome).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
    expect(enabled.overdrawn).toEqual([]);
  });

  it('counts writes it learns of by reading: a permanent role made eligible, then removed, then given back', async () => {
    env.sandbox.tenant.assignRole(DEMO.jsmith, SECURITY_ADMINISTRATOR, 'Assigned');
    const removed = await run('requirePimReapproval', jsmith);
    expect(removed.outcome).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
    expect(removed.overdrawn).toEqual([]);
    const restored = await run('restorePimAssignments', jsmith, {}, (removed.outcome as { rollback: unknown }).rollback);
    expect(restored.outcome).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
    expect(restored.overdrawn).toEqual([]);
  });

  it('releases a device it isolated, on the snapshot, within what it declared', async () => {
    env.sandbox.tenant.actionCompletionMs = 0;
    await run('isolateDevice', wks);
    const isolated = await run('isolateDevice', wks, { followUp: 1 });
    const released = await run('unisolateDevice', wks, {}, (isolated.outcome as { rollback: unknown }).rollback);
    expect(released.outcome.outcome).toBe('pending');
    expect(released.overdrawn).toEqual([]);
    expect((await run('unisolateDevice', wks, { followUp: 1 }, (isolated.outcome as { rollback: unknown }).rollback)).overdrawn).toEqual([]);
  });

  it('catches a Defender read made on the reservation, not through the batcher', async () => {
    const unbatched = await pacedWorld(new Pacer(new MemorySharedState(), ROOMY), { unbatched: true });
    const { outcome, overdrawn } = await meter(undefined, command('isolateDevice', wks), undefined, unbatched);
    expect(outcome.outcome).toBe('pending');
    expect(overdrawn).toEqual([expect.objectContaining({ kind: 'isolateDevice', api: 'defender', declared: 1, made: 3 })]);
  });

  it('makes Defender reads wait their turn on the shared budget once the post is reserved, rather than defer it', async () => {
    // Two calls per 10 s, on a clock the waits move: one reserved for the post, one for the lookup; the machine-actions
    // read waits for the window to free up, then the post is made.
    const clock = { now: Date.now() };
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...ROOMY, defender: [{ max: 2, windowMs: 10_000 }] },
      { now: () => clock.now, sleep: async (ms) => void (clock.now += ms), maxInlineWaitMs: 0 },
    );
    const started = clock.now;
    const { outcome, overdrawn } = await meter(undefined, command('isolateDevice', wks), undefined, await pacedWorld(pacer));
    expect(outcome.outcome).toBe('pending');
    expect(overdrawn).toEqual([]);
    expect(clock.now - started).toBeGreaterThanOrEqual(10_000);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machine: 1, 'machine-actions': 1, isolate: 1 });
  });

  it('defers the isolation before its post when a read cannot be paid for within a minute', async () => {
    const tight = await pacedWorld(new Pacer(new MemorySharedState(), { ...ROOMY, defender: [{ max: 2, windowMs: 3_600_000 }] }, { maxInlineWaitMs: 0 }));
    const { outcome, overdrawn } = await meter(undefined, command('isolateDevice', wks), undefined, tight);
    expect(outcome).toMatchObject({ outcome: 'failed', class: 'paced', detail: expect.stringMatching(/the defender budget \(2 per 3600 s\) is spent/) });
    expect(overdrawn).toEqual([]);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machine: 1 });
    expect(await tight.pacer.reserve({ defender: 1 })).toBeDefined(); // the post's unit went back
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
