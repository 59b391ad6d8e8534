/**
 * A bounded least-recently-used map: at most `maxEntries` entries and, when a `weigh` function
 * is given, at most `maxWeight` total weight (bytes). A Map keeps insertion order, so moving a
 * key to the end on every hit makes the first key the least recently used one.
 */
export class BoundedLru<K, V> {
  private readonly map = new Map<K, V>();
  private weight = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxWeight = Number.POSITIVE_INFINITY,
    private readonly weigh: (value: V) => number = () => 0,
    /** Called for every value that leaves the map (evicted, replaced or deleted). */
    private readonly onEvict?: (key: K, value: V) => void,
  ) {}

  get size(): number {
    return this.map.size;
  }

  /** Total weight held now. */
  get bytes(): number {
    return this.weight;
  }

  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value === undefined) return undefined;
    // Re-inserting marks it most recently used.
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  /** Stores a value; one heavier than the whole budget is not stored (returns false). */
  set(key: K, value: V): boolean {
    const w = this.weigh(value);
    if (w > this.maxWeight) return false;
    this.delete(key);
    this.map.set(key, value);
    this.weight += w;
    while (this.map.size > this.maxEntries || this.weight > this.maxWeight) {
      const oldest = this.map.keys().next().value as K;
      this.delete(oldest);
    }
    return true;
  }

  delete(key: K): void {
    const value = this.map.get(key);
    if (value === undefined) return;
    this.map.delete(key);
    this.weight -= this.weigh(value);
    this.onEvict?.(key, value);
  }

  clear(): void {
    for (const key of [...this.map.keys()]) this.delete(key);
  }

  values(): IterableIterator<V> {
    return this.map.values();
  }
}
