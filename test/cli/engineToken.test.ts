import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { engineBaseUrl } from '../../cli/engineClient';
import { engineToken, type TokenOptions } from '../../cli/engineToken';
import { ConfigError } from '../../shared/errors';

const base = (text: string): URL => {
  const parsed = engineBaseUrl(text);
  if (!parsed.valid) throw new Error(parsed.problem);
  return parsed.url;
};

const dir = mkdtempSync(path.join(tmpdir(), 'responder-token-'));
const localTokenFile = path.join(dir, 'local-token');
writeFileSync(localTokenFile, 'local.developer.token\n');
const missing = path.join(dir, 'nowhere');

/** An Azure sign-in that records the scopes asked for, and answers `token` (or fails with `error`). */
function signIn(answer: { token?: string; error?: string }): TokenOptions['credential'] & { scopes: string[]; authorities: string[] } {
  const scopes: string[] = [];
  const authorities: string[] = [];
  const credential = async (authorityHost: string) => {
    authorities.push(authorityHost);
    return {
      getToken: async (scope: string | string[]) => {
        scopes.push(String(scope));
        if (answer.error) throw new Error(answer.error);
        return answer.token ? { token: answer.token, expiresOnTimestamp: Date.now() + 3_600_000 } : null;
      },
    };
  };
  return Object.assign(credential, { scopes, authorities });
}

describe('engineToken', () => {
  it('takes RESPONDER_TOKEN first, for any engine', async () => {
    const azure = signIn({ token: 'from.azure' });
    expect(await engineToken(base('http://localhost:7071'), { RESPONDER_TOKEN: ' given.token ' }, { localTokenFile, credential: azure })).toEqual({
      token: 'given.token',
      source: 'RESPONDER_TOKEN',
    });
    expect((await engineToken(base('https://responder.contoso.com'), { RESPONDER_TOKEN: 'given.token' }, { credential: azure })).token).toBe('given.token');
    expect(azure.scopes).toEqual([]);
  });

  it("reads the local host's token for this machine only", async () => {
    expect(await engineToken(base('http://127.0.0.1:7071'), {}, { localTokenFile })).toEqual({ token: 'local.developer.token', source: 'local host' });
    const azure = signIn({ token: 'from.azure' });
    const remote = await engineToken(
      base('https://responder.contoso.com'),
      { RESPONDER_AUDIENCE: 'api://sentinel-responder' },
      { localTokenFile, credential: azure },
    );
    expect(remote).toEqual({ token: 'from.azure', source: 'Azure sign-in', scope: 'api://sentinel-responder/.default' });
  });

  it("otherwise asks the Azure sign-in for the engine's audience (the first of RESPONDER_AUDIENCE), in the configured cloud", async () => {
    const azure = signIn({ token: 'from.azure' });
    const env = {
      RESPONDER_AUDIENCE: 'api://contoso-responder, 1f0e5a2b-0000-4000-8000-000000000001',
      AZURE_AUTHORITY_HOST: 'https://login.microsoftonline.us',
    };
    // The local host started against Azure writes no token: the sign-in serves it too.
    expect((await engineToken(base('http://localhost:7071'), env, { localTokenFile: missing, credential: azure })).source).toBe('Azure sign-in');
    expect(azure.scopes).toEqual(['api://contoso-responder/.default']);
    expect(azure.authorities).toEqual(['https://login.microsoftonline.us']);
  });

  it('names RESPONDER_AUDIENCE when there is no audience to ask for, and the local token where it was looked for', async () => {
    await expect(engineToken(base('https://responder.contoso.com'), {}, { credential: signIn({ token: 'x' }) })).rejects.toThrow(ConfigError);
    await expect(engineToken(base('https://responder.contoso.com'), {}, { credential: signIn({ token: 'x' }) })).rejects.toThrow(
      /^no token for https:\/\/responder\.contoso\.com: RESPONDER_TOKEN is not set, and RESPONDER_AUDIENCE \(the engine's app ID URI, in the environment or local\.settings\.json\) is not set/,
    );
    await expect(engineToken(base('http://localhost:7071'), {}, { localTokenFile: missing })).rejects.toThrow(
      `no token for http://localhost:7071: no ${missing} here (npm start writes it where it runs, against the sandbox), RESPONDER_TOKEN is not set`,
    );
  });

  it('says what the sign-in answered, and how to sign in; for a missing consent, what the app registration needs', async () => {
    const env = { RESPONDER_AUDIENCE: 'api://contoso-responder' };
    const url = base('https://responder.contoso.com');
    await expect(engineToken(url, env, { credential: signIn({ error: 'Please run az login to set up an account.\nmore lines' }) })).rejects.toThrow(
      'no token for https://responder.contoso.com: your Azure sign-in gave none for api://contoso-responder/.default (Please run az login to set up an account.). Sign in with az login',
    );
    await expect(engineToken(url, env, { credential: signIn({}) })).rejects.toThrow(/gave none for api:\/\/contoso-responder\/\.default \(no token\)/);
    await expect(
      engineToken(url, env, {
        credential: signIn({
          error: "AADSTS65001: The user or administrator has not consented to use the application with ID '04b07795-8ddb-461a-bbee-02f9e1bf7b46'",
        }),
      }),
    ).rejects.toThrow(/must pre-authorize the Azure CLI \(04b07795-8ddb-461a-bbee-02f9e1bf7b46\) in "Expose an API" for api:\/\/contoso-responder/);
  });
});
