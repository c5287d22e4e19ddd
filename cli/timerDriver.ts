import { InvocationContext, type Timer } from '@azure/functions';
import { parseSchedule } from '../shared/azure/ncrontab';
import type { TimerRegistration } from '../shared/azure/registry';

/** setTimeout cannot wait longer than about 24.8 days; longer waits are taken in steps. */
const MAX_WAIT_MS = 2 ** 31 - 1;

/**
 * Runs timer functions on their schedules in the local host, as the Functions host does: one run at a time per
 * function (a run that overlaps the next occurrence makes that occurrence past due), `runOnStartup` honoured.
 */
export class TimerDriver {
  private readonly timeouts = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly timers: readonly TimerRegistration[],
    private readonly onLog: (...args: unknown[]) => void = () => undefined,
    private readonly now: () => Date = () => new Date(),
  ) {}

  start(): void {
    for (const timer of this.timers) {
      const schedule = parseSchedule(timer.schedule);
      let last: Date | undefined;
      const run = async (due: Date) => {
        const started = this.now();
        const info: Timer = {
          isPastDue: started.getTime() - due.getTime() > 1000,
          schedule: { adjustForDST: false },
          scheduleStatus: { last: (last ?? due).toISOString(), next: schedule.next(started)?.toISOString() ?? '', lastUpdated: started.toISOString() },
        };
        last = started;
        const context = new InvocationContext({
          invocationId: `${timer.name}-${started.getTime()}`,
          functionName: timer.name,
          logHandler: (_level, ...args) => this.onLog(...args),
        });
        try {
          await timer.handler(info, context);
        } catch (error) {
          const { name, message, code, statusCode } = error as Error & { code?: unknown; statusCode?: unknown };
          const said = [name, code, statusCode].filter((part) => part !== undefined && part !== '').join(' ');
          this.onLog(`timer ${timer.name} failed: ${said}${message ? `: ${message}` : ''}`);
        }
        if (!this.stopped) arm(schedule.next(this.now()));
      };
      const arm = (due: Date | undefined) => {
        if (due === undefined || this.stopped) return;
        const wait = Math.min(MAX_WAIT_MS, Math.max(0, due.getTime() - this.now().getTime()));
        const timeout = setTimeout(() => {
          this.timeouts.delete(timeout);
          if (due.getTime() - this.now().getTime() > 0)
            arm(due); // woke early after a long wait: wait again
          else void run(due);
        }, wait);
        timeout.unref();
        this.timeouts.add(timeout);
      };
      if (timer.runOnStartup) void run(this.now());
      else arm(schedule.next(this.now()));
    }
  }

  stop(): void {
    this.stopped = true;
    for (const timeout of this.timeouts) clearTimeout(timeout);
    this.timeouts.clear();
  }
}
