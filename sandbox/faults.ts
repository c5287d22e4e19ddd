/**
 * Fault hooks: make the next matching calls fail with a status (and headers), hang, or lose their connection.
 * Each armed fault is used up by the calls it hits.
 */
export interface Fault {
  method?: string;
  path?: RegExp;
  count: number;
  /** Answer with this status and body… */
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** …or close the connection without an answer. */
  drop?: boolean;
  /** Wait before answering (or dropping). */
  delayMs?: number;
}

export class Faults {
  private readonly armed: Fault[] = [];

  /** Fail the next `count` calls matching `method`/`path`. */
  add(fault: Fault): void {
    this.armed.push({ ...fault });
  }

  clear(): void {
    this.armed.length = 0;
  }

  take(method: string, path: string): Fault | undefined {
    const fault = this.armed.find((f) => f.count > 0 && (!f.method || f.method === method) && (!f.path || f.path.test(path)));
    if (fault) fault.count--;
    return fault;
  }
}
