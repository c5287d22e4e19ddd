import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate } from '../../shared/auth/authenticate';
import { AuthError, authorize } from '../../shared/auth/caller';
import { readConfig } from '../../shared/config';
import { SANDBOX_AUDIENCE as TEST_AUDIENCE, SANDBOX_TENANT_ID as TEST_TENANT, type SandboxAuthority } from '../../sandbox/authority';
import { Sandbox } from '../../sandbox/server';

let sandbox: Sandbox;
let authority: SandboxAuthority;
beforeAll(async () => {
  sandbox = await Sandbox.start();
  authority = sandbox.authority;
});
afterAll(() => sandbox.close());

const settings = (extra: Record<string, string> = {}) => readConfig({ ...sandbox.settings(), ...extra });
const headers = (h: Record<string, string>) => new Headers(h);
const withToken = (token: string) => headers({ authorization: `Bearer ${token}` });

async function refusal(promise: Promise<unknown>): Promise<AuthError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AuthError) return error;
    throw error;
  }
  throw new Error('expected the token to be refused');
}

describe('Entra access tokens', () => {
  it('accepts a valid token, fetching the keys from {authority}/{tenant}/discovery/v2.0/keys over HTTPS', async () => {
    const caller = await authenticate(withToken(await authority.token(['Incidents.Submit'])), settings());
    expect(caller).toEqual({
      objectId: '0a0b0c0d-1111-4222-8333-444455556666',
      name: 'relay-logic-app',
      roles: ['Incidents.Submit'],
      tenantId: TEST_TENANT,
      kind: 'app',
      via: 'entra',
    });
    expect(sandbox.tenant.calls.map((c) => c.path)).toContain(`/${TEST_TENANT}/discovery/v2.0/keys`);
  });

  it('accepts the v1 issuer form (https://sts.windows.net/{tenant}/)', async () => {
    const token = await authority.token(['Responder.Read'], { iss: `https://sts.windows.net/${TEST_TENANT}/` });
    expect((await authenticate(withToken(token), settings()))?.roles).toEqual(['Responder.Read']);
  });

  it('tells a signed-in analyst from an app', async () => {
    const token = await authority.token(['Responder.Act'], { idtyp: 'user', scp: 'access_as_user', upn: 'analyst@contoso.com' });
    expect(await authenticate(withToken(token), settings())).toMatchObject({ kind: 'user', name: 'analyst@contoso.com' });
  });

  it('treats no Authorization header as no caller (the route decides)', async () => {
    expect(await authenticate(headers({}), settings())).toBeUndefined();
  });

  it.each([
    ['an expired token', () => authority.token(['Incidents.Submit'], {}, { expiresIn: Math.floor(Date.now() / 1000) - 600 }), 'the token has expired'],
    [
      'a token for another audience',
      () => authority.token(['Incidents.Submit'], { aud: 'api://someone-else' }),
      'the token is not for this API (audience not accepted)',
    ],
    [
      'a token from another issuer',
      () => authority.token(['Incidents.Submit'], { iss: 'https://login.evil.example/x/v2.0' }),
      'the token was not issued by the expected authority (issuer not accepted)',
    ],
    [
      'a token from another tenant',
      () => authority.token(['Incidents.Submit'], { tid: '11111111-2222-4333-8444-555555555555' }),
      'the token was issued for another tenant',
    ],
    ['an unsigned token (alg: none)', async () => authority.unsignedToken(['Incidents.Submit']), 'the token is not signed with RS256'],
    ['an HS256 token', () => authority.hmacToken(['Incidents.Submit']), 'the token is not signed with RS256'],
    ['a token signed by an unknown key (same kid)', () => authority.token(['Incidents.Submit'], {}, { key: 'stranger' }), 'the token signature is invalid'],
    [
      'a token naming a key the tenant does not publish',
      () => authority.token(['Incidents.Submit'], {}, { key: 'stranger', kid: 'rogue-key' }),
      'the token is signed with a key the tenant does not publish',
    ],
  ])('refuses %s with 401', async (_name, mint, message) => {
    const error = await refusal(authenticate(withToken(await mint()), settings()));
    expect(error.status).toBe(401);
    expect(error.message).toBe(message);
  });

  it.each([['Basic dXNlcjpwYXNz'], ['Bearer'], ['Bearer not-a-jwt'], ['bearer a.b.c extra']])('refuses the malformed header %j with 401', async (value) => {
    const error = await refusal(authenticate(headers({ authorization: value }), settings()));
    expect(error.status).toBe(401);
  });

  it('answers 503 when the signing keys cannot be fetched', async () => {
    const error = await refusal(
      authenticate(withToken(await authority.token(['Incidents.Submit'])), settings({ AZURE_AUTHORITY_HOST: 'https://127.0.0.1:1' })),
    );
    expect(error.status).toBe(503);
  });

  it('authorizes on app roles', async () => {
    const caller = await authenticate(withToken(await authority.token(['Responder.Read'])), settings());
    expect(() => authorize(caller!, ['Responder.Read', 'Responder.Act'])).not.toThrow();
    const error = (() => {
      try {
        authorize(caller!, ['Incidents.Submit']);
      } catch (e) {
        return e as AuthError;
      }
    })();
    expect(error?.status).toBe(403);
  });
});

describe('Easy Auth principal header', () => {
  const principal = (claims: Array<[string, string]>) =>
    Buffer.from(JSON.stringify({ auth_typ: 'aad', name_typ: 'name', role_typ: 'roles', claims: claims.map(([typ, val]) => ({ typ, val })) })).toString(
      'base64',
    );
  const oid = 'http://schemas.microsoft.com/identity/claims/objectidentifier';
  const tid = 'http://schemas.microsoft.com/identity/claims/tenantid';

  /** What App Service sets when its Authentication is on (reference-app-settings.md: WEBSITE_AUTH_ENABLED, read-only). */
  const behindEasyAuth = { RESPONDER_AUTH: 'easyauth', WEBSITE_SITE_NAME: 'responder', WEBSITE_AUTH_ENABLED: 'True' };

  it('is trusted only when RESPONDER_AUTH=easyauth and App Service Authentication is really in front', async () => {
    const header = principal([
      [oid, 'aaaaaaaa-1111-4222-8333-444455556666'],
      [tid, TEST_TENANT],
      ['roles', 'Incidents.Submit'],
    ]);
    expect(await authenticate(headers({ 'x-ms-client-principal': header }), settings())).toBeUndefined();
    const caller = await authenticate(headers({ 'x-ms-client-principal': header }), settings(behindEasyAuth));
    expect(caller).toMatchObject({ objectId: 'aaaaaaaa-1111-4222-8333-444455556666', roles: ['Incidents.Submit'], via: 'easyauth' });
    // Anywhere else (a developer machine, the local host, App Service without Authentication) the header is anyone's.
    for (const without of [
      { RESPONDER_AUTH: 'easyauth' },
      { ...behindEasyAuth, WEBSITE_AUTH_ENABLED: 'False' },
      { ...behindEasyAuth, WEBSITE_SITE_NAME: '' },
    ]) {
      const refused = await refusal(authenticate(headers({ 'x-ms-client-principal': header }), settings(without)));
      expect(refused).toMatchObject({ status: 503, message: expect.stringMatching(/App Service Authentication is not enabled/) });
      expect(settings(without).problems).toContainEqual(expect.stringMatching(/^RESPONDER_AUTH=easyauth trusts the X-MS-CLIENT-PRINCIPAL header/));
    }
  });

  it('refuses a principal from another tenant, without an object id, or not base64 JSON', async () => {
    const easy = settings(behindEasyAuth);
    for (const header of [
      principal([
        [oid, 'x'],
        [tid, '11111111-2222-4333-8444-555555555555'],
      ]),
      principal([[tid, TEST_TENANT]]),
      '%%%not-base64%%%',
    ]) {
      expect((await refusal(authenticate(headers({ 'x-ms-client-principal': header }), easy))).status).toBe(401);
    }
  });
});

describe('settings', () => {
  it('derives both issuer forms per cloud', () => {
    expect(
      readConfig({ AZURE_TENANT_ID: TEST_TENANT, RESPONDER_AUDIENCE: TEST_AUDIENCE, AZURE_AUTHORITY_HOST: 'https://login.microsoftonline.us/' }).issuers,
    ).toEqual([`https://login.microsoftonline.us/${TEST_TENANT}/v2.0`, `https://sts.windows.net/${TEST_TENANT}/`]);
    expect(
      readConfig({ AZURE_TENANT_ID: TEST_TENANT, RESPONDER_AUDIENCE: TEST_AUDIENCE, AZURE_AUTHORITY_HOST: 'https://login.chinacloudapi.cn' }).issuers[1],
    ).toBe(`https://sts.chinacloudapi.cn/${TEST_TENANT}/`);
  });

  it('lists every problem with the settings', () => {
    const { problems } = readConfig({
      AZURE_TENANT_ID: 'contoso',
      AZURE_AUTHORITY_HOST: 'http://login.example',
      RESPONDER_MODE: 'yolo',
      RESPONDER_MAX_BODY_BYTES: '12',
      RESPONDER_IDENTITY_OBJECT_IDS: 'me',
    });
    expect(problems).toEqual([
      `AZURE_TENANT_ID must be the tenant's GUID, got "contoso"`,
      'AZURE_AUTHORITY_HOST must be an https origin such as https://login.microsoftonline.us, got "http://login.example"',
      'RESPONDER_AUDIENCE is not set: the app ID URI (api://…) and/or client id callers request tokens for',
      'RESPONDER_MODE must be audit or enforce, got "yolo"',
      'RESPONDER_IDENTITY_OBJECT_IDS: "me" is not an object id (GUID)',
      'RESPONDER_MAX_BODY_BYTES must be a whole number of bytes between 1024 and 67108864, got "12"',
    ]);
  });
});
