import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPOSITORY_ROOT } from '../../cli/repositoryRoot';

/**
 * `npm run build`, once per test run, whichever test files need dist/ first: vitest runs files in parallel workers,
 * and two builds writing dist/ at once can leave a host half-written for a third file. The run's own directory
 * (vitest.config.mts makes one per run) holds the lock and the mark that the build is done.
 */
export async function buildOnce(): Promise<void> {
  const runDir = process.env.RESPONDER_TEST_RUN_DIR;
  if (!runDir) throw new Error('RESPONDER_TEST_RUN_DIR is unset: run the tests through vitest (vitest.config.mts sets it)');
  const built = path.join(runDir, 'dist-built');
  const lock = path.join(runDir, 'dist-build.lock');
  for (const deadline = Date.now() + 180_000; !existsSync(built); await sleep(200)) {
    if (Date.now() > deadline) throw new Error('another test file has been building dist/ for 3 minutes');
    try {
      mkdirSync(lock); // atomic: one worker builds, the others wait for its mark
    } catch {
      continue;
    }
    try {
      if (!existsSync(built)) {
        execFileSync('npm', ['run', 'build'], { cwd: REPOSITORY_ROOT, stdio: 'ignore' });
        writeFileSync(built, new Date().toISOString());
      }
    } finally {
      rmdirSync(lock);
    }
  }
}
