import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * The repository root: the nearest directory above this file with a package.json, whether this runs from the sources
 * (vitest) or compiled into dist/ (the local host, the benchmark). Throws rather than loop when there is none (a copy
 * of dist/ elsewhere): path.dirname of the root is the root.
 */
export const REPOSITORY_ROOT = ((): string => {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${__dirname}: the local host and the tests read files from the repository`);
  }
})();
