/**
 * Collects what is asked for during one turn of the event loop and hands it over as one batch
 * at the start of the next (`setImmediate`: after the poll phase has read every socket that was
 * ready). Items keep their order; nothing is scheduled while the batch is empty. Used where one
 * hand-over per item is the cost: a MessagePort post per message, a socket write per publish.
 */
export class TurnBatch<T> {
  #items: T[] = [];
  readonly #flush = () => {
    const batch = this.#items;
    this.#items = [];
    this.deliver(batch);
  };

  constructor(private readonly deliver: (batch: T[]) => void) {}

  push(item: T): void {
    this.#items.push(item);
    if (this.#items.length === 1) setImmediate(this.#flush);
  }
}
