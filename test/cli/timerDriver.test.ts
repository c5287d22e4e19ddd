import type { Timer } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { TimerDriver } from '../../cli/timerDriver';

describe('the local host runs timer functions on their schedules', () => {
  it('fires each occurrence, on the second, with the Timer the Functions host would pass', async () => {
    const runs: Array<{ at: number; timer: Timer; fn: string }> = [];
    const driver = new TimerDriver([
      {
        name: 'every-second',
        schedule: '* * * * * *',
        runOnStartup: false,
        handler: async (timer, context) => void runs.push({ at: Date.now(), timer, fn: context.functionName }),
      },
      {
        name: 'yearly',
        schedule: '0 0 0 1 1 *',
        runOnStartup: true,
        handler: async (timer, context) => void runs.push({ at: Date.now(), timer, fn: context.functionName }),
      },
    ]);
    driver.start();
    await new Promise((r) => setTimeout(r, 2300));
    driver.stop();
    const everySecond = runs.filter((r) => r.fn === 'every-second');
    expect(everySecond.length).toBeGreaterThanOrEqual(2);
    for (const run of everySecond) expect(run.at % 1000).toBeLessThan(200);
    expect(everySecond[0]?.timer).toMatchObject({ isPastDue: false, schedule: { adjustForDST: false } });
    expect(Date.parse(everySecond[0]!.timer.scheduleStatus!.next) - everySecond[0]!.at).toBeLessThanOrEqual(1000);
    expect(runs.filter((r) => r.fn === 'yearly')).toHaveLength(1); // runOnStartup only
  });

  it('keeps the schedule when a run fails', async () => {
    let calls = 0;
    const logged: unknown[] = [];
    const driver = new TimerDriver(
      [
        {
          name: 'flaky',
          schedule: '* * * * * *',
          runOnStartup: true,
          handler: async () =>
            void (
              calls++,
              (() => {
                throw new Error('boom');
              })()
            ),
        },
      ],
      (...args) => logged.push(args.join(' ')),
    );
    driver.start();
    await new Promise((r) => setTimeout(r, 1300));
    driver.stop();
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(logged).toContain('timer flaky failed: Error: boom');
  });
});
