import { beforeAll, describe, expect, it, vi } from 'vitest';
import { createDefenderDevices, type DefenderDevices } from '../../shared/clients/defender';
import { DEMO_DEVICES } from '../../sandbox/tenant';
import { useSandboxContext } from '../support/sandboxContext';

/** The Defender client's list reads, against the sandbox's Defender over HTTPS. */
const env = useSandboxContext();

let defender: DefenderDevices;
beforeAll(async () => {
  defender = await createDefenderDevices({
    authorityHost: 'https://login.microsoftonline.com',
    cloud: 'AzurePublicCloud',
    endpoints: { graph: env.sandbox.origin, defender: env.sandbox.origin, arm: env.sandbox.origin },
  });
});

const defenderCalls = () => env.sandbox.tenant.calls.filter((c) => c.path.startsWith('/api/'));

describe('DefenderDevices list reads', () => {
  it("reads many machines in one call, by an OData 'or' of ids, quotes doubled", async () => {
    const machines = await defender.machinesWhere('id', [DEMO_DEVICES.wks042, DEMO_DEVICES.dc01, "it's-not-an-id"]);
    expect(machines.map((m) => m.computerDnsName).sort()).toEqual(['dc01.contoso.com', 'wks-042.contoso.com']);
    const [call] = defenderCalls();
    expect(new URLSearchParams(call?.query).get('$filter')).toBe(`id eq '${DEMO_DEVICES.wks042}' or id eq '${DEMO_DEVICES.dc01}' or id eq 'it''s-not-an-id'`);
  });

  it('answers no machines where Defender answers 404 for a filter that matches none', async () => {
    expect(await defender.machinesWhere('aadDeviceId', ['00000000-0000-4000-8000-000000000404'])).toEqual([]);
    expect(defenderCalls().map((c) => c.status)).toEqual([404]);
  });

  it('follows a page link on its own endpoint, whatever host the link names: the token goes nowhere else', async () => {
    await defender.isolate(DEMO_DEVICES.wks042, 'first', 'Full');
    await defender.unisolate(DEMO_DEVICES.wks042, 'second');
    const filter = encodeURIComponent(`machineId eq '${DEMO_DEVICES.wks042}'`);
    env.sandbox.faults.add({
      method: 'GET',
      path: /^\/api\/machineactions$/,
      count: 1,
      status: 200,
      body: { value: [], '@odata.nextLink': `https://elsewhere.example/api/machineactions?$filter=${filter}&$skip=1` },
    });
    const actions = await defender.machineActionsOf([DEMO_DEVICES.wks042]);
    expect(actions.map((a) => a.requestorComment)).toEqual(['second']);
    expect(defenderCalls().at(-1)).toMatchObject({ path: '/api/machineactions', status: 200, query: expect.stringContaining('$skip=1') });
  });
});

describe('DefenderDevices page links (attack)', () => {
  it('never sends the token to another host, whatever scheme a page link uses', async () => {
    const hosts: string[] = [];
    const real = globalThis.fetch;
    const spy = vi.spyOn(globalThis, 'fetch').mockImplementation((input, init) => {
      hosts.push(new URL(String(input)).host);
      return real(input, init);
    });
    try {
      for (const link of ['x:@elsewhere.invalid/api/machineactions', 'x:.elsewhere.invalid/api/machineactions']) {
        env.sandbox.faults.add({ method: 'GET', path: /^\/api\/machineactions$/, count: 1, status: 200, body: { value: [], '@odata.nextLink': link } });
        await defender.machineActionsOf([DEMO_DEVICES.wks042]).catch(() => undefined);
      }
    } finally {
      spy.mockRestore();
    }
    expect(hosts.length).toBeGreaterThan(0);
    expect(hosts.filter((h) => h !== new URL(env.sandbox.origin).host)).toEqual([]);
  });

  it('stops following page links that never end', async () => {
    env.sandbox.faults.add({
      method: 'GET',
      path: /^\/api\/machineactions$/,
      count: 1_000,
      status: 200,
      body: { value: [{ id: 'x' }], '@odata.nextLink': `${env.sandbox.origin}/api/machineactions?$skiptoken=again` },
    });
    await expect(defender.machineActionsOf([DEMO_DEVICES.wks042])).rejects.toThrow(/page/);
    expect(defenderCalls().length).toBeLessThan(1_000);
  });
});
