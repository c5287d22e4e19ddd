import { afterAll, beforeAll, beforeEach } from 'vitest';
import type { ExecutionContext } from '../../shared/actions/executor';
import { createDefenderDevices } from '../../shared/clients/defender';
import { createGraphDirectory } from '../../shared/clients/graph';
import { SentinelReports } from '../../shared/clients/sentinel';
import { Sandbox } from '../../sandbox/server';

/**
 * The sandbox tenant and the real clients pointed at it: DefaultAzureCredential finds the sandbox's managed identity
 * as on App Service (IDENTITY_ENDPOINT + IDENTITY_HEADER), Graph and Defender calls go to the sandbox over HTTPS.
 */
export async function startSandboxContext(): Promise<{ sandbox: Sandbox; context: ExecutionContext; reset: () => void }> {
  const sandbox = await Sandbox.start();
  Object.assign(process.env, sandbox.settings());
  const settings = {
    authorityHost: 'https://login.microsoftonline.com',
    cloud: 'AzurePublicCloud' as const,
    endpoints: { graph: sandbox.origin, defender: sandbox.origin, arm: sandbox.origin },
  };
  const context: ExecutionContext = {
    directory: await createGraphDirectory(settings),
    devices: await createDefenderDevices(settings),
    incidents: new SentinelReports(settings),
  };
  const reset = () => sandbox.reset();
  return { sandbox, context, reset };
}

/**
 * For a test file: start the sandbox and its clients before the tests, give each test a freshly seeded tenant, and
 * stop it after. Read `sandbox` and `context` inside tests (they are set once the file's hooks have run).
 */
export function useSandboxContext(): { readonly sandbox: Sandbox; readonly context: ExecutionContext } {
  const state = {} as Awaited<ReturnType<typeof startSandboxContext>>;
  beforeAll(async () => {
    Object.assign(state, await startSandboxContext());
  });
  afterAll(() => state.sandbox.close());
  beforeEach(() => state.reset());
  return state;
}
