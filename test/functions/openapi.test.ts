import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTE_DOCS } from '../../shared/api/openapi';
import { registry } from '../../shared/azure/registry';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

const FUNCTIONS_DIR = path.join(__dirname, '../../functions');

let engine: EngineUnderTest;
let document: { openapi: string; paths: Record<string, Record<string, any>> };
beforeAll(async () => {
  engine = await EngineUnderTest.start({ RESPONDER_POLICY: 'version: 1\nmode: audit\nrules: []\n' });
  for (const file of readdirSync(FUNCTIONS_DIR).filter((f) => f.endsWith('.ts'))) await import(path.join(FUNCTIONS_DIR, file));
  const route = registry.http.find((r) => r.name === 'openapi')!;
  const res = await call(route.handler, 'openapi.json', { method: 'GET' });
  expect(res.status).toBe(200);
  document = res.json;
});
afterAll(() => engine.stop());

describe('GET /api/openapi.json', () => {
  it('is public, OpenAPI 3.1, and describes every registered route and method with its role', () => {
    expect(document.openapi).toBe('3.1.0');
    for (const route of registry.http) {
      for (const method of route.methods) {
        const operation = document.paths[`/api/${route.route}`]?.[method.toLowerCase()];
        expect(operation, `${method} /api/${route.route}`).toBeDefined();
        if ('roles' in route.auth) {
          expect(operation.description).toContain(route.auth.roles[0]);
          expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['401', '403']));
        }
        for (const name of route.route.match(/\{(\w+)\}/g) ?? []) expect(operation.parameters.map((p: { name: string }) => `{${p.name}}`)).toContain(name);
      }
    }
  });

  it('has examples that validate against their schemas, and that the real handlers accept', async () => {
    const headers = await engine.bearer(['Incidents.Submit', 'Responder.Read', 'Responder.Act', 'Responder.Approve']);
    const missingKey = `${'a'.repeat(40)}.disableUser.h${'b'.repeat(32)}`;
    let checked = 0;
    for (const route of registry.http) {
      const body = ROUTE_DOCS[route.name]?.body;
      if (!body) continue;
      expect(body.schema.safeParse(body.example).success, route.name).toBe(true);
      const operation = document.paths[`/api/${route.route}`]?.post;
      expect(operation.requestBody.content['application/json'].example).toEqual(body.example);
      // Not a 400: the body is what the route takes (a key that names no action answers 404, after the body is read).
      const res = await call(route.handler, route.route.replace('{key}', missingKey), { params: { key: missingKey }, headers, body: body.example });
      expect(res.status, `${route.name}: ${JSON.stringify(res.json?.error ?? '')}`).not.toBe(400);
      expect(res.status, route.name).toBeLessThan(500);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(6);
  });

  it("takes the entity trigger's body, as the fixture has it, in the request's schema", async () => {
    const entity = JSON.parse(readFileSync(path.join(__dirname, '../fixtures/entityTrigger/account.json'), 'utf8'));
    expect(ROUTE_DOCS.requestAction?.body?.schema.safeParse({ kind: 'revokeSessions', entity }).success).toBe(true);
  });
});
