import { Writable } from 'node:stream';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchedDevices, FRESH_MACHINE_MS, MAX_BATCH, REFUSED_OR_MS } from '../../shared/clients/batchedDevices';
import { createDefenderDevices, type DefenderDevices, type DeviceListReads, type Devices } from '../../shared/clients/defender';
import { EnginePaced, everyDefenderApi, Pacer, Reservation } from '../../shared/coordination/pacer';
import { MemorySharedState } from '../../shared/coordination/sharedState';
import { DEMO_DEVICES, type CallRecord } from '../../sandbox/tenant';
import { useSandboxContext } from '../support/sandboxContext';

/** BatchedDevices over the real Defender client, against the sandbox's Defender over HTTPS. */
const env = useSandboxContext();

let defender: DefenderDevices;
beforeAll(async () => {
  defender = await createDefenderDevices(settings());
});

const settings = () => ({
  authorityHost: 'https://login.microsoftonline.com',
  cloud: 'AzurePublicCloud' as const,
  endpoints: { graph: env.sandbox.origin, defender: env.sandbox.origin, arm: env.sandbox.origin },
});

const deviceId = (i: number): string => `ba${i.toString(16).padStart(38, '0')}`;
const aadDeviceId = (i: number): string => `aad00000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;

/** `n` more devices in the sandbox tenant, each with an Entra device id; their Defender ids. */
function addDevices(n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    env.sandbox.tenant.addMachine({ id: deviceId(i), computerDnsName: `batch-${i}.contoso.com`, aadDeviceId: aadDeviceId(i) });
    return deviceId(i);
  });
}

/** The ids a Defender list call asked for, read from its `$filter`. */
function idsAskedFor(call: CallRecord): string[] {
  const filter = new URLSearchParams(call.query ?? '').get('$filter') ?? '';
  return [...filter.matchAll(/ eq '([^']*)'/g)].map((m) => m[1] as string);
}

const defenderCalls = (): CallRecord[] => env.sandbox.tenant.calls.filter((c) => c.path.startsWith('/api/'));

/** A logger whose lines the test reads. */
function capturedLog(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'warn' }, new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  return { log, lines };
}

describe('BatchedDevices: concurrent reads coalesced into list calls', () => {
  it('answers ten concurrent lookups by Defender id with one call', async () => {
    const ids = addDevices(10);
    const batched = new BatchedDevices(defender);
    const machines = await Promise.all(ids.map((id) => batched.getMachine(id)));
    expect(machines.map((m) => m?.id)).toEqual(ids);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machines: 1 });
    expect(idsAskedFor(defenderCalls()[0] as CallRecord)).toEqual(ids);
  });

  it('sends a lone read on the next turn of the event loop, as the single read it always was', async () => {
    const made: string[] = [];
    const recording: Devices & DeviceListReads = {
      getMachine: (id) => (made.push(`getMachine ${id}`), defender.getMachine(id)),
      findMachines: (by) => defender.findMachines(by),
      listMachineActions: (id) => (made.push(`listMachineActions ${id}`), defender.listMachineActions(id)),
      machinesWhere: (field, values) => (made.push(`machinesWhere ${field}`), defender.machinesWhere(field, values)),
      machineActionsOf: (ids) => (made.push(`machineActionsOf ${ids.length}`), defender.machineActionsOf(ids)),
      isolate: (...args) => defender.isolate(...args),
      unisolate: (...args) => defender.unisolate(...args),
    };
    const batched = new BatchedDevices(recording);
    const read = batched.getMachine(DEMO_DEVICES.websrv1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(made).toEqual([`getMachine ${DEMO_DEVICES.websrv1}`]); // no timer between the read and its call
    expect((await read)?.computerDnsName).toBe('websrv1.contoso.com');
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machine: 1 });
  });

  it(`caps a batch at ${MAX_BATCH} ids, keeping each URL well under 2 KB`, async () => {
    const ids = addDevices(60);
    const batched = new BatchedDevices(defender);
    const [machines, actions] = await Promise.all([
      Promise.all(ids.map((id) => batched.getMachine(id))),
      Promise.all(ids.map((id) => batched.listMachineActions(id))),
    ]);
    expect(machines.every((m, i) => m?.id === ids[i])).toBe(true);
    expect(actions.every((a) => a.length === 0)).toBe(true);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machines: 3, 'machine-actions': 3 });
    const calls = defenderCalls();
    expect(calls.map((c) => idsAskedFor(c).length).sort()).toEqual([20, 20, 20, 20, 20, 20]);
    expect(
      calls
        .map((c) => idsAskedFor(c))
        .flat()
        .sort(),
    ).toEqual([...ids, ...ids].sort());
    for (const call of calls) expect(`${env.sandbox.origin}${call.path}${call.query}`.length).toBeLessThan(1600);
  });

  it('lets reads made while a call is in flight wait for it, then go together in the next', async () => {
    const ids = addDevices(4);
    const batched = new BatchedDevices(defender);
    env.sandbox.faults.add({ method: 'GET', path: /^\/api\/machines\//, count: 1, delayMs: 150 });
    const first = batched.getMachine(ids[0] as string);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the first call is on its way
    const rest = ids.slice(1).map((id) => batched.getMachine(id));
    expect((await first)?.id).toBe(ids[0]);
    expect((await Promise.all(rest)).map((m) => m?.id)).toEqual(ids.slice(1));
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machine: 1, machines: 1 });
    expect(idsAskedFor(defenderCalls()[1] as CallRecord)).toEqual(ids.slice(1));
  });

  it('never answers a read from a call made before it: a machine action posted meanwhile is seen', async () => {
    const [id] = addDevices(1) as [string];
    const batched = new BatchedDevices(defender);
    env.sandbox.faults.add({ method: 'GET', path: /^\/api\/machineactions$/, count: 1, delayMs: 150 });
    const before = batched.listMachineActions(id);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await defender.isolate(id, 'posted while the first read is on its way', 'Full');
    const after = batched.listMachineActions(id);
    await before;
    expect((await after).map((a) => a.requestorComment)).toEqual(['posted while the first read is on its way']);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ 'machine-actions': 2, isolate: 1 });
  });

  it('answers not found, and no actions, for the ids a batch answered nothing for', async () => {
    const ids = addDevices(3);
    const unknown = [deviceId(900), deviceId(901)];
    await defender.isolate(ids[1] as string, 'isolated before', 'Full');
    const batched = new BatchedDevices(defender);
    const asked = [ids[0], unknown[0], ids[1], unknown[1], ids[2]] as string[];
    const [machines, actions] = await Promise.all([
      Promise.all(asked.map((id) => batched.getMachine(id))),
      Promise.all(asked.map((id) => batched.listMachineActions(id))),
    ]);
    expect(machines.map((m) => m?.id)).toEqual([ids[0], undefined, ids[1], undefined, ids[2]]);
    expect(actions.map((a) => a.length)).toEqual([0, 0, 1, 0, 0]);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ isolate: 1, machines: 1, 'machine-actions': 1 });
    // Defender answers 404 when no machine matches at all: every id is then not found.
    expect(await Promise.all(unknown.map((id) => batched.getMachine(id)))).toEqual([undefined, undefined]);
  });

  it('coalesces lookups by Entra device id, each answered with every record that carries it', async () => {
    addDevices(3);
    // A re-onboarded device: a stale record under the same Entra device id.
    env.sandbox.tenant.addMachine({ id: deviceId(100), computerDnsName: 'batch-1.contoso.com', aadDeviceId: aadDeviceId(1), healthStatus: 'Inactive' });
    const batched = new BatchedDevices(defender);
    const found = await Promise.all([0, 1, 2, 404].map((i) => batched.findMachines({ aadDeviceId: aadDeviceId(i).toUpperCase() })));
    expect(found.map((machines) => machines.map((m) => m.id).sort())).toEqual([[deviceId(0)], [deviceId(1), deviceId(100)], [deviceId(2)], []]);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machines: 1 });
  });

  it("falls back to one read per id when Defender refuses 'or', logs it once, and does not ask again", async () => {
    env.sandbox.tenant.defenderAcceptsOr = false;
    const ids = addDevices(6);
    const { log, lines } = capturedLog();
    const batched = new BatchedDevices(defender, { log });
    expect((await Promise.all(ids.slice(0, 3).map((id) => batched.getMachine(id)))).map((m) => m?.id)).toEqual(ids.slice(0, 3));
    expect(env.sandbox.tenant.calls.filter((c) => c.status === 400)).toHaveLength(1);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machines: 1, machine: 3 });
    expect((await Promise.all(ids.slice(3).map((id) => batched.getMachine(id)))).map((m) => m?.id)).toEqual(ids.slice(3));
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machines: 1, machine: 6 });
    expect(lines).toEqual([expect.objectContaining({ level: 40, read: 'machines by id', status: 400 })]);
    // Machine actions are a read of their own kind: refused once, then one call per device.
    await defender.isolate(ids[0] as string, 'isolated before', 'Full');
    const actions = await Promise.all(ids.slice(0, 2).map((id) => batched.listMachineActions(id)));
    expect(actions.map((a) => a.length)).toEqual([1, 0]);
    expect(lines.map((line) => line.read)).toEqual(['machines by id', 'machine actions']);
  });

  it("tries 'or' again a while after a 400 that may have had nothing to do with it", async () => {
    const ids = addDevices(6);
    let now = 1_000_000;
    const batched = new BatchedDevices(defender, { now: () => now, freshMachineMs: 0 });
    env.sandbox.faults.add({ method: 'GET', path: /^\/api\/machines$/, count: 1, status: 400, body: { error: { code: 'BadRequest', message: 'transient' } } });
    expect((await Promise.all(ids.slice(0, 3).map((id) => batched.getMachine(id)))).map((m) => m?.id)).toEqual(ids.slice(0, 3));
    now += REFUSED_OR_MS;
    expect((await Promise.all(ids.slice(3).map((id) => batched.getMachine(id)))).map((m) => m?.id)).toEqual(ids.slice(3));
    expect(defenderCalls().filter((c) => c.path === '/api/machines' && c.status === 200)).toHaveLength(1);
  });

  it('never answers a read with a record Defender sent for another id: extra records and ids in another case (attack)', async () => {
    const [a, b, c] = addDevices(3) as [string, string, string];
    const batched = new BatchedDevices(defender);
    env.sandbox.faults.add({
      method: 'GET',
      path: /^\/api\/machines$/,
      count: 1,
      status: 200,
      body: {
        value: [
          { id: c, computerDnsName: 'not-asked.contoso.com' },
          { id: b.toUpperCase(), computerDnsName: 'b.contoso.com' },
        ],
      },
    });
    const [ma, mb] = await Promise.all([batched.getMachine(a), batched.getMachine(b)]);
    expect(ma).toBeUndefined();
    expect(mb?.computerDnsName).toBe('b.contoso.com');
    // The record sent unasked is remembered under its own id only.
    expect((await batched.getMachine(c))?.id).toBe(c);
    expect((await batched.getMachine(a))?.id).toBe(a);
  });

  it('follows @odata.nextLink through every page and splits the actions per machine, newest first', async () => {
    const ids = addDevices(3);
    const tenant = env.sandbox.tenant;
    tenant.defenderPageSize = 2;
    let clock = Date.parse('2026-11-28T12:00:00.000Z');
    tenant.now = () => (clock += 1000);
    for (const id of ids) {
      await defender.isolate(id, `isolate ${id}`, 'Full');
      await defender.unisolate(id, `release ${id}`);
    }
    const batched = new BatchedDevices(defender);
    const actions = await Promise.all(ids.map((id) => batched.listMachineActions(id)));
    expect(actions.map((list) => list.map((a) => `${a.type} ${a.machineId}`))).toEqual(ids.map((id) => [`Unisolate ${id}`, `Isolate ${id}`]));
    expect(tenant.defenderCalls()['machine-actions']).toBe(3); // six actions, two a page
  });

  it('fails every read of a batch whose call fails, and the next batch is a new call', async () => {
    const ids = addDevices(3);
    const batched = new BatchedDevices(defender);
    env.sandbox.faults.add({ path: /^\/api\/machines$/, count: 1, status: 503, body: { error: { code: 'ServiceUnavailable', message: 'down' } } });
    const failed = await Promise.allSettled(ids.map((id) => batched.getMachine(id)));
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect((await Promise.all(ids.map((id) => batched.getMachine(id)))).map((m) => m?.id)).toEqual(ids);
  });

  it(`answers a lookup of a machine read within ${FRESH_MACHINE_MS} ms from that answer, never machine actions`, async () => {
    let now = 0;
    const batched = new BatchedDevices(defender, { now: () => now });
    await batched.findMachines({ aadDeviceId: '80e2f5c1-3b7a-4c55-9d0e-1f2a3b4c5d6e' }); // enrichment's read, by Entra device id
    now += FRESH_MACHINE_MS - 1;
    expect((await batched.getMachine(DEMO_DEVICES.wks042.toUpperCase()))?.id).toBe(DEMO_DEVICES.wks042); // the worker's, by Defender id
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machines: 1 });
    now += 1;
    await batched.getMachine(DEMO_DEVICES.wks042);
    await batched.listMachineActions(DEMO_DEVICES.wks042);
    await batched.listMachineActions(DEMO_DEVICES.wks042);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machines: 1, machine: 1, 'machine-actions': 2 });
  });
});

describe('BatchedDevices and pacing', () => {
  const budgets = { ...everyDefenderApi([{ max: 100, windowMs: 60_000 }]), 'graph-writes': [], idprotection: [] };

  it('paces a batch on the shared budget, never on the reservation of the execution whose read started it', async () => {
    const ids = addDevices(3);
    const pacer = new Pacer(new MemorySharedState(), budgets);
    const batched = new BatchedDevices(await createDefenderDevices(settings(), (api) => pacer.take(api)));
    const reservations = ids.map(() => new Reservation());
    await Promise.all(ids.map((id, i) => pacer.within(reservations[i] as Reservation, () => batched.getMachine(id))));
    expect(reservations.flatMap((r) => r.overdrawn())).toEqual([]);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machines: 1 });
    // The post an execution reserved is drawn from its reservation, as before.
    await pacer.within(reservations[0] as Reservation, () => batched.isolate(ids[0] as string, 'reserved post', 'Full'));
    expect(reservations[0]?.overdrawn()).toEqual([{ api: 'defender-isolate', declared: 0, made: 1 }]);
  });

  it("never batches a plan's reads with containment's: they are refused on their own when the budget is tight", async () => {
    const ids = addDevices(4);
    // A tenth of 20 calls a minute for plans: two.
    const pacer = new Pacer(new MemorySharedState(), { ...budgets, 'defender-machine': [{ max: 20, windowMs: 60_000 }] }, { maxInlineWaitMs: 0 });
    const batched = new BatchedDevices(await createDefenderDevices(settings(), (api) => pacer.take(api)));
    const [planned, contained] = await Promise.all([
      pacer.sparing(() => Promise.allSettled(ids.slice(0, 3).map((id) => batched.getMachine(id)))),
      Promise.all(ids.slice(3).map((id) => batched.getMachine(id))),
    ]);
    expect(planned.map((r) => (r.status === 'rejected' ? (r.reason as Error).constructor : r.value?.id))).toEqual([ids[0], ids[1], EnginePaced]);
    expect(contained.map((m) => m?.id)).toEqual([ids[3]]);
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machine: 3 });
  });
});

describe('BatchedDevices while containment is paced', () => {
  it('lets reads arriving apart wait for each other, and sends a full batch at once', async () => {
    const ids = addDevices(5);
    const batched = new BatchedDevices(defender, { congested: () => true, lingerMs: 200, maxBatch: 4 });
    const first = Promise.all(ids.slice(0, 3).map(async (id, i) => (await new Promise((resolve) => setTimeout(resolve, i * 20)), batched.getMachine(id))));
    expect((await first).map((m) => m?.id)).toEqual(ids.slice(0, 3));
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machines: 1 });
    const started = Date.now();
    const machineIds = ids.slice(0, 4);
    await Promise.all(machineIds.map((id) => batched.listMachineActions(id)));
    expect(Date.now() - started).toBeLessThan(200); // four reads filled the batch: no lingering
    expect(env.sandbox.tenant.defenderCalls()).toEqual({ machines: 1, 'machine-actions': 1 });
  });

  it('reads at once while containment is not paced', async () => {
    const [id] = addDevices(1);
    const batched = new BatchedDevices(defender, { congested: () => false, lingerMs: 10_000 });
    const started = Date.now();
    expect((await batched.getMachine(id as string))?.id).toBe(id);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('Pacer.underPressure', () => {
  it('says an API is near its budget past three quarters of a window, or once a call was refused, for one window', async () => {
    const clock = { now: 1_000_000 };
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...everyDefenderApi([{ max: 4, windowMs: 10_000 }]), 'graph-writes': [], idprotection: [] },
      {
        now: () => clock.now,
        maxInlineWaitMs: 0,
      },
    );
    expect(pacer.underPressure('defender-isolate')).toBe(false);
    for (let i = 0; i < 2; i++) await pacer.take('defender-isolate');
    expect(pacer.underPressure('defender-isolate')).toBe(false);
    await pacer.take('defender-isolate');
    expect(pacer.underPressure('defender-isolate')).toBe(true);
    expect(pacer.underPressure('defender-machines')).toBe(false);
    await pacer.take('defender-isolate');
    await expect(pacer.take('defender-isolate')).rejects.toBeInstanceOf(EnginePaced);
    expect(pacer.underPressure('defender-isolate')).toBe(true);
    clock.now += 10_000;
    expect(pacer.underPressure('defender-isolate')).toBe(false);
  });
});
