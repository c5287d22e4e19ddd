import type { AccessToken, TokenCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { azureCredential } from '../../shared/clients/credential';
import { TableSharedState } from '../../shared/coordination/tableSharedState';
import { openTableLedger } from '../../shared/ledger/tableLedger';
import { Sandbox } from '../../sandbox/server';
import { Azurite } from '../support/azurite';
import { sandboxTls } from '../../sandbox/tls';

/**
 * The connection Azure uses: no account key, the managed identity's bearer token. DefaultAzureCredential finds the
 * sandbox's App Service-style identity endpoint; Azurite, over HTTPS, accepts only a token issued for
 * https://storage.azure.com. The table location is given to openTableLedger directly, not through
 * AzureWebJobsStorage__tableServiceUri: Azurite on an IP address wants the account in the path, and the setting is an
 * origin (config.test.ts covers how the setting is read).
 */
let sandbox: Sandbox;
let azurite: Azurite;
beforeAll(async () => {
  sandbox = await Sandbox.start();
  Object.assign(process.env, sandbox.settings());
  azurite = await Azurite.start({ tls: sandboxTls() });
}, 30_000);
afterAll(async () => {
  azurite.stop();
  await sandbox.close();
});

describe('Table storage through the managed identity', () => {
  it('opens the ledger and the shared records with the engine credential, and keeps an action', async () => {
    const credential = await azureCredential(sandbox.origin);
    const ledger = await openTableLedger({ tableServiceUri: azurite.tableServiceUri, credential }, 'identityledger');
    const { entry } = await ledger.create({
      key: `${'ab'.repeat(12)}.isolateDevice.${'c'.repeat(40)}`,
      kind: 'isolateDevice',
      target: { type: 'device', id: 'c'.repeat(40) },
      params: { isolationType: 'Selective' },
      mode: 'audit',
      reason: 'rule x',
      source: { type: 'incident', subject: 'incident-1' },
      state: 'planned',
      createdAt: '2026-11-29T04:00:00.000Z',
      by: 'engine',
    });
    expect((await ledger.get(entry.key))?.state).toBe('planned');

    const shared = new TableSharedState(ledger.table);
    expect(await shared.update<{ n: number }, number>('counter', (record) => ({ next: { n: (record?.n ?? 0) + 1 }, result: (record?.n ?? 0) + 1 }))).toBe(1);
    expect(sandbox.tenant.calls.filter((c) => c.path === '/msi/token').length).toBeGreaterThan(0);
  });

  it('is refused with a token for another audience: the emulator does check the bearer', async () => {
    const vaultToken: TokenCredential = {
      getToken: async (): Promise<AccessToken> => ({
        token: await sandbox.authority.token([], {
          aud: 'https://vault.azure.net',
          iss: `https://sts.windows.net/${'0'.repeat(8)}/`,
          nbf: Math.floor(Date.now() / 1000) - 60,
        }),
        expiresOnTimestamp: Date.now() + 3_600_000,
      }),
    };
    await expect(openTableLedger({ tableServiceUri: azurite.tableServiceUri, credential: vaultToken }, 'refusedledger')).rejects.toMatchObject({
      statusCode: 403,
    });
  });
});
