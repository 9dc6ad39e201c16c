/** Small async primitives used by the session. */

/** A list of values delivered in order to whoever awaits them; may end with an error. */
export class AsyncQueue<T> {
  private readonly items: T[] = [];
  private readonly waiters: { resolve: (r: IteratorResult<T, undefined>) => void; reject: (e: unknown) => void }[] = [];
  private ended = false;
  private failure: unknown = undefined;
  private failed = false;

  /** Add a value; false if the queue has already ended. */
  push(value: T): boolean {
    if (this.ended) return false;
    const w = this.waiters.shift();
    if (w) w.resolve({ value, done: false });
    else this.items.push(value);
    return true;
  }

  /** End the queue: readers get the remaining values, then the end (or `error`). */
  close(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    if (error !== undefined) {
      this.failed = true;
      this.failure = error;
    }
    for (const w of this.waiters.splice(0)) {
      if (this.failed) w.reject(this.failure);
      else w.resolve({ value: undefined, done: true });
    }
  }

  /** True once {@link close} was called. */
  get isClosed(): boolean {
    return this.ended;
  }

  /** Remove and return the values nobody has taken yet. */
  drain(): T[] {
    return this.items.splice(0);
  }

  /** The next value, or the end. */
  next(): Promise<IteratorResult<T, undefined>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
    if (this.ended) {
      return this.failed ? Promise.reject(this.failure) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

/** Wakes everyone waiting when something changed. */
export class Notify {
  private waiters: (() => void)[] = [];

  /** A promise that resolves on the next {@link notify}. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** A promise with its resolve/reject functions exposed. */
export class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (v: T) => void;
  reject!: (e: unknown) => void;
  settled = false;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = (v) => {
        this.settled = true;
        resolve(v);
      };
      this.reject = (e) => {
        this.settled = true;
        reject(e);
      };
    });
    // A rejection nobody awaits must not crash the page or the test runner.
    this.promise.catch(() => undefined);
  }
}

/** `p`'s value, or `undefined` if it has not settled within `ms` milliseconds. */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let expire = (): void => {};
  const expired = new Promise<undefined>((resolve) => (expire = () => resolve(undefined)));
  const timer = setTimeout(expire, ms);
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}
