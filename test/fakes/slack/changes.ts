// Waiting on the fake Slack's state: a probe re-checked whenever a call, ack, response or upload changes that state.

type Waiter = { check: () => void; fail: (error: Error) => void };

export class ChangeFeed {
  private readonly waiters = new Set<Waiter>();
  private closed = false;

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
      const timer = setTimeout(() => waiter.fail(new Error(`fake Slack: waited ${timeoutMs} ms for ${describe()}`)), timeoutMs);
      this.waiters.add(waiter);
      waiter.check();
      if (this.closed && this.waiters.has(waiter)) waiter.fail(new Error(`fake Slack: closed; still waiting for ${describe()}`));
    });
  }

  /** Rejects everything still waiting, and any later wait that is not already satisfied; called when the fake closes. */
  close(): void {
    this.closed = true;
    for (const waiter of [...this.waiters]) waiter.fail(new Error('fake Slack: closed while waiting'));
  }
}
