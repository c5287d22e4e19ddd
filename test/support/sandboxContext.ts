import type { ExecutionContext } from '../../shared/actions/executor';
import { createDefenderDevices } from '../../shared/clients/defender';
import { createGraphDirectory } from '../../shared/clients/graph';
import { Sandbox } from '../sandbox/server';
import { SandboxTenant } from '../sandbox/tenant';

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
  const context: ExecutionContext = { directory: await createGraphDirectory(settings), devices: await createDefenderDevices(settings) };
  /** A freshly seeded tenant behind the same server and tokens, and no armed faults. */
  const reset = () => {
    const fresh = new SandboxTenant();
    const tenant = sandbox.tenant;
    for (const key of ['users', 'riskyUsers', 'machines'] as const) {
      tenant[key].clear();
      for (const [id, value] of fresh[key] as Map<string, never>) (tenant[key] as Map<string, never>).set(id, value);
    }
    tenant.machineActions.length = 0;
    tenant.calls.length = 0;
    tenant.actionCompletionMs = 0;
    tenant.defenderQuota = { ...fresh.defenderQuota };
    tenant.now = Date.now;
    sandbox.faults.clear();
  };
  return { sandbox, context, reset };
}
