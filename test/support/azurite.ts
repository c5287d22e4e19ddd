import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import path from 'node:path';
import { freePort } from './net';
import type { SandboxTls } from '../../sandbox/tls';

/**
 * Azurite's Table service, started by the tests (pure JS, in memory). The account name and key below are Azurite's
 * public, documented development defaults — TEST-ONLY, not a secret of anyone's.
 */
const DEV_ACCOUNT = 'devstoreaccount1';
const DEV_KEY_TEST_ONLY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export class Azurite {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  /**
   * With `tls`, Azurite serves HTTPS and accepts Entra bearer tokens (`--oauth basic`: it checks a token's issuer,
   * audience and lifetime, not its signature), as the managed identity's connection in Azure needs.
   */
  static async start(options: { tls?: SandboxTls } = {}): Promise<Azurite> {
    const port = await freePort();
    // Resolved as a package, so it is found from the sources (tests) and from dist/ (the compiled benchmark) alike.
    const main = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist/src/table/main.js');
    // Started by its node entry, not npx: killing npx would orphan the child.
    const bearer = options.tls ? ['--cert', options.tls.certPath, '--key', options.tls.keyPath, '--oauth', 'basic'] : [];
    const child = spawn(
      process.execPath,
      [
        main,
        '--inMemoryPersistence',
        '--silent',
        '--skipApiVersionCheck',
        '--disableTelemetry',
        '--tableHost',
        '127.0.0.1',
        '--tablePort',
        String(port),
        ...bearer,
      ],
      {
        stdio: 'ignore',
      },
    );
    await waitForPort(port, 15_000);
    return new Azurite(child, port);
  }

  /** The table endpoint for a token credential (Azurite started with `tls`): on an IP address the account is in the path. */
  get tableServiceUri(): string {
    return `https://127.0.0.1:${this.port}/${DEV_ACCOUNT}`;
  }

  get connectionString(): string {
    return `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};AccountKey=${DEV_KEY_TEST_ONLY};TableEndpoint=http://127.0.0.1:${this.port}/${DEV_ACCOUNT};`;
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      }).on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`Azurite did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
