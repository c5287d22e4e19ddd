/**
 * The bearer token the command line sends to an engine, from the first place that has one:
 * 1. RESPONDER_TOKEN, for any engine;
 * 2. for this machine, the token the local host wrote where it was started (the command line runs from the same
 *    directory as `npm start`);
 * 3. the user's Azure sign-in (DefaultAzureCredential: az login, Visual Studio Code, a managed identity) for the
 *    engine's audience, RESPONDER_AUDIENCE, from the environment or local.settings.json.
 */
import type { TokenCredential } from '@azure/identity';
import { readFileSync } from 'node:fs';
import { azureCredential } from '../shared/clients/credential';
import { readConfig } from '../shared/config';
import { ConfigError } from '../shared/errors';
import { LOCAL_TOKEN_FILE, LOOPBACK_NAMES } from './localToken';

export type TokenSource = 'RESPONDER_TOKEN' | 'local host' | 'Azure sign-in';

export interface EngineToken {
  token: string;
  source: TokenSource;
  /** What an Azure sign-in was asked for: `<audience>/.default`. */
  scope?: string;
}

/** The Azure CLI's client id, which an app registration must pre-authorize before `az login` can get tokens for it. */
const AZURE_CLI_CLIENT_ID = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';

export interface TokenOptions {
  localTokenFile?: string;
  /** The Azure sign-in; tests replace it. */
  credential?: (authorityHost: string) => Promise<Pick<TokenCredential, 'getToken'>>;
}

export async function engineToken(url: URL, env: NodeJS.ProcessEnv, options: TokenOptions = {}): Promise<EngineToken> {
  const { localTokenFile = LOCAL_TOKEN_FILE, credential = azureCredential } = options;
  const given = env.RESPONDER_TOKEN?.trim();
  if (given) return { token: given, source: 'RESPONDER_TOKEN' };
  const local = LOOPBACK_NAMES.has(url.hostname) ? readLocalToken(localTokenFile) : undefined;
  if (local) return { token: local, source: 'local host' };

  const settings = readConfig(env);
  const audience = settings.audiences[0];
  if (audience === undefined) {
    const here = LOOPBACK_NAMES.has(url.hostname) ? `no ${localTokenFile} here (npm start writes it where it runs, against the sandbox), ` : '';
    throw new ConfigError(
      `no token for ${url.origin}: ${here}RESPONDER_TOKEN is not set, and RESPONDER_AUDIENCE (the engine's app ID URI, in the environment or local.settings.json) is not set to ask your Azure sign-in (az login) for one`,
    );
  }
  const scope = `${audience}/.default`;
  let failure = 'no token';
  try {
    const token = await (await credential(settings.authorityHost)).getToken(scope);
    if (token) return { token: token.token, source: 'Azure sign-in', scope };
  } catch (error) {
    failure = ((error as Error).message ?? String(error)).split('\n')[0]?.slice(0, 400) ?? failure;
  }
  const consent = /AADSTS65001/.test(failure)
    ? `; the engine's app registration must pre-authorize the Azure CLI (${AZURE_CLI_CLIENT_ID}) in "Expose an API" for ${audience}`
    : '';
  throw new ConfigError(
    `no token for ${url.origin}: your Azure sign-in gave none for ${scope} (${failure}). Sign in with az login (--tenant <the engine's tenant> if it is not your default)${consent}, check RESPONDER_AUDIENCE, or set RESPONDER_TOKEN`,
  );
}

function readLocalToken(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`cannot read ${file}: ${(error as Error).message}`);
  }
}
