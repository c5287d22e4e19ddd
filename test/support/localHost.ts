import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import path from 'node:path';
import { freePort } from './net';
import { REPOSITORY_ROOT } from '../../cli/repositoryRoot';

/**
 * The compiled local host (`dist/cli/host.js`, run `npm run build` first) as a child process on a free port, with
 * `env` over this process's environment (its `languageWorkers__node__arguments` given to Node, as the Functions host gives
 * them to its worker), in the Azure tenant and quiet logging unless `env` says otherwise, started in
 * `cwd` if given (where it reads local.settings.json and writes .responder/). Resolves once GET /api/health answers; fails if the
 * host exits first or does not answer within 30 s.
 */
export async function startLocalHost(
  env: Record<string, string>,
  stdio: StdioOptions = 'ignore',
  cwd?: string,
): Promise<{ child: ChildProcess; base: string }> {
  const port = await freePort();
  // The Functions host starts its Node worker with this app setting's arguments (a heap cap for a small instance).
  const nodeArguments = (env.languageWorkers__node__arguments ?? '').split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, [...nodeArguments, path.join(REPOSITORY_ROOT, 'dist/cli/host.js')], {
    env: { ...process.env, RESPONDER_TENANT: 'azure', LOG_LEVEL: 'error', ...env, PORT: String(port) },
    stdio,
    cwd,
  });
  const base = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 30_000; ; await new Promise((resolve) => setTimeout(resolve, 100))) {
    if (child.exitCode !== null) throw new Error(`the local host exited with ${child.exitCode}`);
    const up = await fetch(`${base}/api/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return { child, base };
    if (Date.now() > deadline) throw new Error('the local host did not answer within 30 s');
  }
}
