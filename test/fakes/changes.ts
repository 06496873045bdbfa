// Waiting on a fake's state (Discord's or Slack's): a probe re-checked whenever a request, event or upload changes it.

type Waiter = { check: () => void; fail: (error: Error) => void };

export class ChangeFeed {
  private readonly waiters = new Set<Waiter>();
  private closed = false;
  /** Which fake, for error messages: "fake Discord", "fake Slack". */
  private readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  /** Tells every waiter to look again. */
  notify(): void {
    for (const waiter of [...this.waiters]) waiter.check();
  }

  /**
   * Resolves with the first value `probe` returns other than undefined, checked now and after every change; rejects
   * after `timeoutMs` with `describe()` in the message, so a failing test says what it waited for and what it saw.
   */
  waitFor<T>(probe: () => T | undefined, timeoutMs: number, describe: () => string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      const waiter: Waiter = {
        check: () => {
          let value: T | undefined;
          try {
            value = probe();
          } catch (error) {
            finish();
            reject(error);
            return;
          }
          if (value !== undefined) {
            finish();
            resolve(value);
          }
        },
        fail: (error) => {
          finish();
          reject(error);
        },
      };
      const timer = setTimeout(() => waiter.fail(new Error(`${this.name}: waited ${timeoutMs} ms for ${describe()}`)), timeoutMs);
      this.waiters.add(waiter);
      waiter.check();
      if (this.closed && this.waiters.has(waiter)) waiter.fail(new Error(`${this.name}: closed; still waiting for ${describe()}`));
    });
  }

  /** Rejects everything still waiting, and any later wait that is not already satisfied; called when the fake closes. */
  close(): void {
    this.closed = true;
    for (const waiter of [...this.waiters]) waiter.fail(new Error(`${this.name}: closed while waiting`));
  }
}
