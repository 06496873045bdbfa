// How a platform says why a post failed, so the service knows whether to try again later or to tell the member now.

/**
 * Thrown by a platform adapter's `deliverResult` / `deliverFailure`. `retryable`: the platform is down, slow or
 * limiting us (5xx, 429, a reset connection), so the same post may work later, no sooner than `retryAfterMs` when the
 * platform said. Not retryable: it can never work (the bot is not in the channel, the channel is gone, the upload
 * is refused). An error of any other class counts as retryable.
 */
export class DeliveryError extends Error {
  override readonly name = 'DeliveryError';
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options: { retryable: boolean; retryAfterMs?: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Whether a failed post may work later, and how long the platform asked us to wait. */
export function deliveryVerdict(error: unknown): { retryable: boolean; retryAfterMs: number | undefined } {
  if (error instanceof DeliveryError) return { retryable: error.retryable, retryAfterMs: error.retryAfterMs };
  return { retryable: true, retryAfterMs: undefined };
}
