import { describe, expect, it, vi } from 'vitest';
import { EnginePaced } from '../../shared/coordination/pacer';
import { ENRICHED_PER_KIND, ENRICHMENT_CONCURRENCY, ENRICHMENT_TTL_MS, Enricher } from '../../shared/enrichment/enrich';
import type { AccountEntity, HostEntity } from '../../shared/signals/signal';
import { account, host, signal } from '../fixtures/signals';
import { DEMO, DEMO_DEVICES, TIER0_GROUP } from '../../sandbox/tenant';
import { useSandboxContext } from '../support/sandboxContext';

const env = useSandboxContext();

/** Waits between attempts are recorded, not slept. */
const waits: number[] = [];
const enricher = () =>
  new Enricher(
    async () => env.context,
    Date.now,
    async (ms) => void waits.push(ms),
  );

describe('enrichment from the sandbox tenant', () => {
  it('fills in user risk, privilege and group membership, resolving a UPN to its object id', async () => {
    const s = await enricher().enrich(
      signal({
        entities: [
          account(),
          { kind: 'account', upn: 'megan.bowen@contoso.com' },
          account({ aadUserId: DEMO.breakglass, upn: 'breakglass1@contoso.com' }),
          account({ aadUserId: DEMO.jsmith, upn: 'jsmith@contoso.com' }),
        ],
      }),
      [TIER0_GROUP],
    );
    const [adele, megan, breakglass, jsmith] = s.entities as AccountEntity[];
    expect(adele).toMatchObject({ userRisk: 'high', privileged: false, groupIds: [] });
    expect(megan).toMatchObject({ aadUserId: DEMO.megan, userRisk: 'medium', privileged: true });
    expect(breakglass).toMatchObject({ privileged: true, groupIds: [TIER0_GROUP] });
    expect(jsmith).toMatchObject({ userRisk: 'none', privileged: false });
    expect(s.notes).toEqual([]);
  });

  it('reads the risky-user list once for many accounts and many incidents', async () => {
    const e = enricher();
    await e.enrich(signal({ entities: [account(), account({ aadUserId: DEMO.jsmith, upn: 'jsmith@contoso.com' })] }), []);
    await e.enrich(signal({ entities: [account({ aadUserId: DEMO.megan, upn: 'megan.bowen@contoso.com' })] }), []);
    expect(env.sandbox.tenant.calls.filter((c) => c.path === '/v1.0/identityProtection/riskyUsers')).toHaveLength(1);
  });

  it('reads the risky-user list again ahead of its expiry, in the background: no incident waits for a refresh', async () => {
    const clock = { now: Date.now() };
    const e = new Enricher(
      async () => env.context,
      () => clock.now,
      async () => undefined,
    );
    const listed = () => env.sandbox.tenant.calls.filter((c) => c.path === '/v1.0/identityProtection/riskyUsers').length;
    await e.enrich(signal({ entities: [account()] }), []);
    expect(listed()).toBe(1);
    clock.now += ENRICHMENT_TTL_MS * 0.6;
    env.sandbox.tenant.setRisk(DEMO.jsmith, 'high');
    const before = await e.enrich(signal({ entities: [account({ aadUserId: DEMO.jsmith, upn: 'jsmith@contoso.com' })] }), []);
    expect(before.entities).toMatchObject([{ userRisk: 'none' }]); // answered from the list held, while it is read again
    await vi.waitFor(() => expect(listed()).toBe(2));
    clock.now += ENRICHMENT_TTL_MS * 0.6; // past the first list's TTL, within the refreshed one's
    const after = await e.enrich(signal({ entities: [account({ aadUserId: DEMO.jsmith, upn: 'jsmith@contoso.com' })] }), []);
    expect(after.entities).toMatchObject([{ userRisk: 'high' }]);
    expect(listed()).toBe(2);
  });

  it('fills in device risk, tags and the Defender id, by id or exact name', async () => {
    const s = await enricher().enrich(
      signal({
        entities: [
          host({ mdatpDeviceId: undefined }),
          { kind: 'host', fqdn: 'websrv1.contoso.com', hostName: 'websrv1' },
          { kind: 'host', fqdn: 'ghost.contoso.com' },
        ],
      }),
      [],
    );
    const [wks, web, ghost] = s.entities as HostEntity[];
    expect(wks).toMatchObject({ mdatpDeviceId: DEMO_DEVICES.wks042, deviceRisk: 'High', tags: ['workstation'], exposure: 'Medium' });
    expect(web).toMatchObject({ mdatpDeviceId: DEMO_DEVICES.websrv1, deviceRisk: 'Medium', tags: ['server'] });
    expect(ghost?.tags).toBeUndefined();
    expect(s.notes).toEqual(['ghost.contoso.com is not a Defender for Endpoint device: the risk and tags of ghost.contoso.com are unknown']);
  });

  it('tries a transient failure again, after its Retry-After, and a permanent one never', async () => {
    waits.length = 0;
    env.sandbox.faults.add({
      path: /^\/api\/machines/,
      count: 2,
      status: 429,
      headers: { 'retry-after': '2' },
      body: { error: { code: 'TooManyRequests', message: 'quota' } },
    });
    env.sandbox.faults.add({ path: /riskyUsers$/, count: 1, drop: true });
    const s = await enricher().enrich(signal({ entities: [account(), host()] }), []);
    expect(s.entities).toMatchObject([{ userRisk: 'high' }, { tags: ['workstation'] }]);
    expect(s.notes).toEqual([]);
    // The dropped connection names no wait: 250 ms; the 429s' Retry-After: 2 s, twice.
    expect(waits.sort((a, b) => a - b)).toEqual([250, 2000, 2000]);

    waits.length = 0;
    env.sandbox.faults.add({ path: /^\/api\/machines/, count: 1, status: 400, body: { error: { code: 'InvalidRequest', message: 'bad id' } } });
    const t = await enricher().enrich(signal({ entities: [host()] }), []);
    expect(t.notes).toEqual(['Defender data for wks-042.contoso.com unavailable (defender 400 InvalidRequest: bad id): treated as unknown']);
    // Unknown for good: nothing waits for it.
    expect(t.entities[0]).not.toHaveProperty('unavailable');
    expect(waits).toEqual([]);
  });

  it('gives up after three attempts, or sooner when the wait asked for is too long for a request in flight', async () => {
    waits.length = 0;
    env.sandbox.faults.add({ path: /^\/api\/machines/, count: 3, status: 503, body: { error: { code: 'ServiceUnavailable', message: 'down' } } });
    env.sandbox.faults.add({
      path: /riskyUsers$/,
      count: 1,
      status: 429,
      headers: { 'retry-after': '30' },
      body: { error: { code: 'TooManyRequests', message: 'later' } },
    });
    const s = await enricher().enrich(signal({ entities: [account(), host()] }), []);
    expect(s.notes).toEqual([
      'user risk (ID Protection) unavailable for now (graph 429 TooManyRequests: later): what reads it waits for it',
      'Defender data for wks-042.contoso.com unavailable for now (defender 503 ServiceUnavailable: down): what reads it waits for it',
    ]);
    // Unknown for now, by name and why: what reads it waits (a 429's Retry-After says when it may be read).
    expect(s.entities).toMatchObject([
      { unavailable: [{ data: 'userRisk', why: 'graph 429 TooManyRequests: later', retryAfterMs: 30_000 }] },
      {
        unavailable: ['identity', 'deviceRisk', 'deviceTags'].map((data) => ({ data, why: 'defender 503 ServiceUnavailable: down' })),
      },
    ]);
    expect(waits.sort((a, b) => a - b)).toEqual([250, 500]);
  });

  it('degrades: what cannot be read stays unknown, with a note, and is not cached', async () => {
    env.sandbox.faults.add({ path: /^\/api\/machines/, count: 3, drop: true });
    env.sandbox.faults.add({ path: /riskyUsers$/, count: 3, status: 429, body: { error: { code: 'TooManyRequests', message: 'one request per second' } } });
    const e = enricher();
    const s = await e.enrich(signal({ entities: [account(), host()] }), []);
    expect((s.entities[0] as AccountEntity).userRisk).toBeUndefined();
    expect((s.entities[1] as HostEntity).tags).toBeUndefined();
    expect(s.notes.sort()).toEqual([
      expect.stringMatching(/^Defender data for wks-042.contoso.com unavailable for now \(defender no answer/),
      'user risk (ID Protection) unavailable for now (graph 429 TooManyRequests: one request per second): what reads it waits for it',
    ]);
    const again = await e.enrich(signal({ entities: [account(), host()] }), []);
    expect(again.entities).toMatchObject([{ userRisk: 'high' }, { tags: ['workstation'] }]);
  });

  it('marks data unknown for now when a budget is spent (EnginePaced from a port), and unknown for good on a 404 or a missing record', async () => {
    const paced = new EnginePaced('defender-machine', 'paced by the engine: the defender-machine budget (100 per 60 s) is spent', 45_000);
    const devices = {
      ...env.context.devices!,
      async getMachine(): Promise<never> {
        throw paced;
      },
    };
    // The sandbox's directory with one read refused by the engine's pacing (its prototype keeps the other reads).
    const directory = Object.assign(Object.create(env.context.directory) as typeof env.context.directory, {
      async listActiveRoles(): Promise<never> {
        throw new EnginePaced('idprotection', 'paced by the engine: the idprotection budget is spent', 5_000);
      },
    });
    const e = new Enricher(
      async () => ({ directory, devices }),
      Date.now,
      async (ms) => void waits.push(ms),
    );
    waits.length = 0;
    const s = await e.enrich(signal({ entities: [account(), host()] }), []);
    // A 45 s refill is longer than a request may wait: not waited for, but marked; a 5 s one is waited for twice.
    expect(waits).toEqual([5_000, 5_000]);
    const [adele, wks] = s.entities as [AccountEntity, HostEntity];
    expect(adele).toMatchObject({ userRisk: 'high', verified: { id: DEMO.adele } });
    expect(adele.privileged).toBeUndefined();
    expect(adele.unavailable).toEqual([{ data: 'privileged', why: 'paced by the engine: the idprotection budget is spent', retryAfterMs: 5_000 }]);
    expect(wks.unavailable).toEqual(
      ['identity', 'deviceRisk', 'deviceTags'].map((data) => ({
        data,
        why: 'paced by the engine: the defender-machine budget (100 per 60 s) is spent',
        retryAfterMs: 45_000,
      })),
    );

    env.sandbox.faults.add({
      method: 'GET',
      path: /^\/api\/machines/,
      count: 2,
      status: 404,
      body: { error: { code: 'ResourceNotFound', message: 'no machine' } },
    });
    const gone = await enricher().enrich(signal({ entities: [host(), { kind: 'host', fqdn: 'ghost.contoso.com' }] }), []);
    for (const entity of gone.entities) expect(entity).not.toHaveProperty('unavailable');
  });

  it('checks what the APIs answer like a payload: a malformed id leaves the entity unknown, missing tags stay unknown', async () => {
    const machine = { id: DEMO_DEVICES.wks042, computerDnsName: 'wks-042.contoso.com', aadDeviceId: 'junk', riskScore: 'High', machineTags: ['workstation'] };
    env.sandbox.faults.add({
      method: 'GET',
      path: /^\/v1\.0\/users\/megan/,
      count: 1,
      status: 200,
      body: { id: 'megan', userPrincipalName: 'megan.bowen@contoso.com' },
    });
    env.sandbox.faults.add({ method: 'GET', path: /^\/api\/machines\//, count: 1, status: 200, body: { ...machine, id: 'not-a-defender-id' } });
    const s = await enricher().enrich(signal({ entities: [{ kind: 'account', upn: 'megan.bowen@contoso.com' }, host()] }), []);
    expect(s.entities).toEqual([{ kind: 'account', upn: 'megan.bowen@contoso.com' }, host()]);
    expect(s.notes).toEqual([
      'megan.bowen@contoso.com: the directory answered the string "megan" as the object id, not a GUID',
      'Defender answered the string "not-a-defender-id" as a device id, not 40 hexadecimal characters: the risk and tags of wks-042.contoso.com are unknown',
    ]);

    const { machineTags: _tags, ...untagged } = machine;
    env.sandbox.faults.add({ method: 'GET', path: /^\/api\/machines\//, count: 1, status: 200, body: untagged });
    const t = await enricher().enrich(signal({ entities: [host({ aadDeviceId: undefined })] }), []);
    const [wks] = t.entities as HostEntity[];
    expect(wks).toMatchObject({ mdatpDeviceId: DEMO_DEVICES.wks042, deviceRisk: 'High' });
    expect(wks?.tags).toBeUndefined();
    expect(wks?.aadDeviceId).toBeUndefined();
    expect(t.notes).toEqual(['Defender gave no list of machine tags for wks-042.contoso.com: its tags are unknown']);
  });

  it('reads at most 8 entities at once, and at most 50 of each kind: a thousand UPNs are not a thousand parallel reads', async () => {
    let inFlight = 0;
    let most = 0;
    const users: string[] = [];
    // The directory port, counting: each read holds its place for a moment, as a real call would.
    const directory = {
      ...env.context.directory,
      async getUser(idOrUpn: string) {
        most = Math.max(most, ++inFlight);
        users.push(idOrUpn);
        await new Promise((resolve) => setTimeout(resolve, 2));
        inFlight--;
        return undefined;
      },
    };
    const e = new Enricher(
      async () => ({ ...env.context, directory }),
      Date.now,
      async () => undefined,
    );
    const entities = Array.from({ length: 1000 }, (_, i) => ({ kind: 'account' as const, upn: `user${i}@contoso.com` }));
    const s = await e.enrich(signal({ entities }), []);
    expect(most).toBe(ENRICHMENT_CONCURRENCY);
    expect(users).toHaveLength(ENRICHED_PER_KIND);
    expect(s.notes).toContain('950 account(s) past the first 50 were not read in the directory: actions on them are held for a human');
    expect(s.entities[999]).toMatchObject({ notRead: 'not read in the directory: past the first 50 accounts of the signal' });
    expect(s.entities).toHaveLength(1000);
  });

  it("never hands containment a plan's refused read: a read refused to spare the budget is not what an incident waits on", async () => {
    let reads = 0;
    const devices = {
      ...env.context.devices!,
      async getMachine(id: string) {
        // The plan's read: refused by the pacer's sparing mode, a moment after the incident's read asked for the same.
        if (++reads === 1) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          throw new EnginePaced('defender-machine', 'not read: the defender-machine budget is kept for containment', 60_000);
        }
        return env.context.devices!.getMachine(id);
      },
    };
    const e = new Enricher(
      async () => ({ ...env.context, devices }),
      Date.now,
      async () => undefined,
    );
    const [preview, incident] = await Promise.all([
      e.enrich(signal({ entities: [host()] }), [], { preview: true }),
      e.enrich(signal({ entities: [host()] }), []),
    ]);
    expect((preview.entities[0] as HostEntity).tags).toBeUndefined();
    expect((incident.entities[0] as HostEntity).tags).toEqual(['workstation']);
    expect(reads).toBe(2);
  });
});
