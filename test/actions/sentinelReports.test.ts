import { describe, expect, it } from 'vitest';
import { outcomeComment } from '../../shared/actions/report';
import { commentIdFor } from '../../shared/clients/sentinel';
import { parseIncidentArmId } from '../../shared/signals/identifiers';
import { SAMPLE_INCIDENT_ID } from '../../sandbox/tenant';
import { useSandboxContext } from '../support/sandboxContext';

const env = useSandboxContext();

const incident = parseIncidentArmId(SAMPLE_INCIDENT_ID)!;
const stored = () => env.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!;

describe('reporting to Sentinel through @azure/arm-securityinsight', () => {
  it('writes one comment per action: a retry rewrites it, never adds a second', async () => {
    const id = commentIdFor('0123456789abcdef01234567.revokeSessions.6e7b768e-07e2-4810-8459-485f84f8f204');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(commentIdFor('0123456789abcdef01234567.revokeSessions.6e7b768e-07e2-4810-8459-485f84f8f204')).toBe(id);
    expect(commentIdFor('0123456789abcdef01234567.disableUser.6e7b768e-07e2-4810-8459-485f84f8f204')).not.toBe(id);
    await env.context.incidents.comment(incident, id, 'first outcome');
    await env.context.incidents.comment(incident, id, 'rewritten outcome');
    expect([...stored().comments.values()].map((c) => c.properties.message)).toEqual(['rewritten outcome']);
  });

  it('adds a label once, sending back the incident with its ETag', async () => {
    await env.context.incidents.label(incident, 'responder-contained');
    await env.context.incidents.label(incident, 'responder-contained');
    expect(stored().properties.labels.map((l) => l.labelName)).toEqual(['responder-contained']);
    expect(stored().properties).toMatchObject({ title: 'Credential theft followed by malware on WKS-042', severity: 'High', status: 'New' });
    expect(env.sandbox.tenant.count('PUT', /incidents\/[^/]+$/i)).toBe(1);
    // The second call did not even read the incident: this process had labelled it already.
    expect(env.sandbox.tenant.count('GET', /incidents\/[^/]+$/i)).toBe(1);
  });

  it('reads an incident and lists its entities as the service sent them', async () => {
    const json = (await env.context.incidents.incidentWithEntities(incident)) as {
      id: string;
      properties: { severity: string; relatedEntities: Array<Record<string, any>> };
    };
    expect(json.id).toBe(SAMPLE_INCIDENT_ID);
    expect(json.properties.severity).toBe('High');
    // @azure/arm-securityinsight beta.6 would turn this string into a character-indexed object: we keep the raw JSON.
    expect(json.properties.relatedEntities[1]?.properties.additionalData.MdatpDeviceId).toBe('0c1d9e3bbaf6b2c7e8f9a0b1c2d3e4f5a6b7c8d9');
  });

  it("lists a workspace's incidents changed since a time, of the severities asked, page by page, as the service sent them", async () => {
    const workspace = { subscriptionId: incident.subscriptionId, resourceGroup: incident.resourceGroup, workspaceName: incident.workspaceName };
    const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
    stored().properties.lastModifiedTimeUtc = at(30);
    const armId = (name: string) => SAMPLE_INCIDENT_ID.replace(incident.incidentName, name);
    env.sandbox.tenant.addIncident(armId('newer'), 'Newer', 'Medium').properties.lastModifiedTimeUtc = at(10);
    env.sandbox.tenant.addIncident(armId('low'), 'Low', 'Low').properties.lastModifiedTimeUtc = at(5);
    env.sandbox.tenant.addIncident(armId('older'), 'Older', 'High').properties.lastModifiedTimeUtc = at(300);
    env.sandbox.tenant.armPageSize = 1;
    const since = new Date(Date.now() - 60 * 60_000);
    const first = await env.context.incidents.incidentsPage(workspace, since, ['High', 'Medium']);
    expect(first.incidents.map((i) => i.id)).toEqual([armId('newer')]);
    const second = await env.context.incidents.incidentsPage(workspace, since, ['High', 'Medium'], first.next);
    expect(second).toEqual({ incidents: [expect.objectContaining({ id: SAMPLE_INCIDENT_ID, properties: expect.objectContaining({ severity: 'High' }) })] });
    // Every severity when none is asked for.
    env.sandbox.tenant.armPageSize = 10;
    expect((await env.context.incidents.incidentsPage(workspace, since, [])).incidents.map((i) => i.id)).toEqual([
      armId('low'),
      armId('newer'),
      SAMPLE_INCIDENT_ID,
    ]);
    // A kept link that leads away from ARM is never sent the engine's token.
    await expect(env.context.incidents.incidentsPage(workspace, since, [], 'https://attacker.example/subscriptions/x')).rejects.toMatchObject({
      api: 'arm',
      status: 400,
      code: 'ForeignNextLink',
    });
  });

  it('raises what the failure classifier understands', async () => {
    env.sandbox.faults.add({
      method: 'PUT',
      count: 1,
      status: 429,
      headers: { 'retry-after': '3' },
      body: { error: { code: 'TooManyRequests', message: 'throttled' } },
    });
    await expect(env.context.incidents.comment(incident, commentIdFor('f'.repeat(24) + '.disableUser.' + 'f'.repeat(40)), 'x')).rejects.toMatchObject({
      name: 'ApiError',
      api: 'arm',
      status: 429,
      retryAfterMs: 3000,
    });
    await expect(env.context.incidents.label({ ...incident, incidentName: 'no-such-incident' }, 'x')).rejects.toMatchObject({ status: 404 });
  });

  it('writes outside text into comments as inert text: no Markdown marks, invisible characters or unchecked names', () => {
    const action = {
      key: 'k',
      kind: 'revokeSessions' as const,
      target: { type: 'user' as const, id: '3c5a1e8e-2f62-4d8b-9c11-7a0d3b4c5e6f', displayName: 'Adele Vance (CEO) ~~' },
      reason: 'rule x: **urgent** `now` [here](http://evil.example)',
      mode: 'enforce' as const,
      source: { type: 'incident' as const, subject: 's' },
    };
    const text = outcomeComment(action, 'held', 'WKS-042: done ~~\u00ad\u3164', 1);
    // The title names the target by what identifies it, never by a display name nothing checks.
    expect(text.split('\n')[0]).toBe('Sentinel Responder — revokeSessions on 3c5a1e8e-2f62-4d8b-9c11-7a0d3b4c5e6f: HELD: needs an analyst');
    expect(text).toContain('Result: WKS-042: done \\~\\~  ');
    expect(text).toContain('Why: rule x: \\*\\*urgent\\*\\* \\`now\\` \\[here\\](hxxp[:]//evil.example)');
  });
});
