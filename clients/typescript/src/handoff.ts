// handoff — turns kafkajs's push (eachMessage) into a pull (for await), one
// message at a time: put() resolves 'processed' only when the iterator is
// asked for the next item, that is when the loop body that got this item has
// finished, and 'closed' when the loop ended without finishing it (break,
// throw, return), so the caller commits an offset only after its handler ran.

export type Outcome = 'processed' | 'closed';

export class Handoff<T> {
  private waiting: ((r: IteratorResult<T>) => void) | null = null;
  private failWaiting: ((e: unknown) => void) | null = null;
  private offered: { item: T; ack: (o: Outcome) => void } | null = null;
  private inFlight: ((o: Outcome) => void) | null = null;
  private closed = false;
  private error: unknown = null;

  /** From eachMessage: hands item to the loop and resolves when its body finished. */
  put(item: T): Promise<Outcome> {
    if (this.closed) return Promise.resolve('closed');
    return new Promise((ack) => {
      if (this.waiting !== null) {
        const w = this.waiting;
        this.waiting = null;
        this.failWaiting = null;
        this.inFlight = ack;
        w({ value: item, done: false });
      } else {
        this.offered = { item, ack };
      }
    });
  }

  /** The iterator's next(): the previous item is done; waits for the next one. */
  next(): Promise<IteratorResult<T>> {
    if (this.inFlight !== null) {
      this.inFlight('processed');
      this.inFlight = null;
    }
    if (this.error !== null) return Promise.reject(this.error);
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    if (this.offered !== null) {
      const { item, ack } = this.offered;
      this.offered = null;
      this.inFlight = ack;
      return Promise.resolve({ value: item, done: false });
    }
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failWaiting = reject;
    });
  }

  /** The loop ended: an item still in its body is not done, unless outcome says it is. */
  close(outcome: Outcome = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.inFlight?.(outcome);
    this.inFlight = null;
    this.offered?.ack('closed');
    this.offered = null;
    this.waiting?.({ value: undefined, done: true });
    this.waiting = null;
    this.failWaiting = null;
  }

  /** The source failed for good: the loop's pending or next next() rejects with error. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.error = error;
    this.failWaiting?.(error);
    this.waiting = null;
    this.failWaiting = null;
  }
}

/** The most recent `capacity` keys, oldest forgotten first (insertion order). */
export class RecentKeys {
  private readonly keys = new Map<string, true>();
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('dedupe window must be a positive integer');
  }
  has(key: string): boolean {
    return this.keys.has(key);
  }
  add(key: string): void {
    this.keys.delete(key);
    this.keys.set(key, true);
    if (this.keys.size > this.capacity) {
      const oldest = this.keys.keys().next();
      if (oldest.done !== true) this.keys.delete(oldest.value);
    }
  }
  get size(): number {
    return this.keys.size;
  }
}
