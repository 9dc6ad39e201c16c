/** Small async primitives used by the session. */
/** A list of values delivered in order to whoever awaits them; may end with an error. */
export class AsyncQueue {
    items = [];
    waiters = [];
    ended = false;
    failure = undefined;
    failed = false;
    /** Add a value; false if the queue has already ended. */
    push(value) {
        if (this.ended)
            return false;
        const w = this.waiters.shift();
        if (w)
            w.resolve({ value, done: false });
        else
            this.items.push(value);
        return true;
    }
    /** End the queue: readers get the remaining values, then the end (or `error`). */
    close(error) {
        if (this.ended)
            return;
        this.ended = true;
        if (error !== undefined) {
            this.failed = true;
            this.failure = error;
        }
        for (const w of this.waiters.splice(0)) {
            if (this.failed)
                w.reject(this.failure);
            else
                w.resolve({ value: undefined, done: true });
        }
    }
    /** True once {@link close} was called. */
    get isClosed() {
        return this.ended;
    }
    /** Remove and return the values nobody has taken yet. */
    drain() {
        return this.items.splice(0);
    }
    /** The next value, or the end. */
    next() {
        if (this.items.length > 0)
            return Promise.resolve({ value: this.items.shift(), done: false });
        if (this.ended) {
            return this.failed ? Promise.reject(this.failure) : Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    }
}
/** Wakes everyone waiting when something changed. */
export class Notify {
    waiters = [];
    /** A promise that resolves on the next {@link notify}. */
    wait() {
        return new Promise((resolve) => this.waiters.push(resolve));
    }
    notify() {
        for (const w of this.waiters.splice(0))
            w();
    }
}
/** A promise with its resolve/reject functions exposed. */
export class Deferred {
    promise;
    resolve;
    reject;
    settled = false;
    constructor() {
        this.promise = new Promise((resolve, reject) => {
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
export async function within(p, ms) {
    let expire = () => { };
    const expired = new Promise((resolve) => (expire = () => resolve(undefined)));
    const timer = setTimeout(expire, ms);
    try {
        return await Promise.race([p, expired]);
    }
    finally {
        clearTimeout(timer);
    }
}
